"""Small randomly initialised checkpoints: real models, untrained, labelled placeholder."""

from __future__ import annotations

import pathlib
from typing import Any

import torch

from services.synthesis.checkpoint import default_specs, save_checkpoint
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
