"""Small randomly initialised checkpoints: real models, untrained, labelled placeholder
(Splicebuster has no weights to train, so its checkpoint is not a placeholder)."""

from __future__ import annotations

import pathlib
from typing import Any

import torch

from services.synthesis import traces
from services.synthesis.checkpoint import default_specs, save_checkpoint
from services.synthesis.consistency import ConsistencySpec, ScorerSpec
from services.synthesis.models import build_model
from services.synthesis.preprocess import TilingSpec


def make_checkpoint(
    path: pathlib.Path | str, arch: str, *, tiling: TilingSpec | None = None, seed: int = 0, **kwargs: Any
) -> Any:
    """Saves a randomly initialised `arch` model (seeded) with its default specs; returns
    what save_checkpoint returns."""
    torch.manual_seed(seed)
    pre, default_tiling = default_specs(arch)
    return save_checkpoint(
        path,
        build_model(arch, **kwargs),
        arch=arch,
        arch_kwargs=kwargs,
        preprocessing=pre,
        tiling=tiling or default_tiling,
        model_version=f"{arch}-random-test",
        placeholder=True,
        training={"dataset": "none", "recipe": "random init for tests"},
    )


def make_consistency_checkpoint(
    path: pathlib.Path | str,
    hidden: int = 16,
    depth: int = 1,
    embed_dim: int = 8,
    seed: int = 0,
    *,
    placeholder: bool = True,
    consistency: ConsistencySpec | None = None,
) -> Any:
    """A randomly initialised consistency embedder (seeded) over traces features with image
    context (in_features = 2 x traces.feature_count()), default sampling and scorer."""
    torch.manual_seed(seed)
    spec = consistency or ConsistencySpec(features="traces", context=True)
    kwargs = {"in_features": 2 * traces.feature_count(), "hidden": hidden, "depth": depth, "embed_dim": embed_dim}
    return save_checkpoint(
        path,
        build_model("consistency", **kwargs),
        arch="consistency",
        arch_kwargs=kwargs,
        model_version="consistency-random-test",
        placeholder=placeholder,
        training={"dataset": "none", "recipe": "random init for tests"},
        consistency=spec,
    )


def make_splicebuster_checkpoint(path: pathlib.Path | str, *, placeholder: bool = False) -> Any:
    """Splicebuster: no weights, co-occurrence features, the Gaussian-uniform outlier scorer."""
    spec = ConsistencySpec(features="cooccurrence", context=False, scorer=ScorerSpec(method="gaussian_outlier"))
    return save_checkpoint(
        path,
        build_model("splicebuster"),
        arch="splicebuster",
        arch_kwargs={"in_features": 81},
        model_version="splicebuster-test",
        placeholder=placeholder,
        training={"dataset": "none", "recipe": "no training: Splicebuster's baseline"},
        consistency=spec,
    )
