"""The synthesis checkpoint format: one torch.save'd dict with fixed keys.

Everything serving needs to reproduce training is in the file, so the two cannot drift:

    format           "imagetrust.synthesis.checkpoint"
    format_version   int (FORMAT_VERSION); readers refuse newer versions
    arch             a models.ARCHS name
    arch_kwargs      dict passed to models.build_model(arch, **arch_kwargs)
    state_dict       the model's tensors
    preprocessing    preprocess.PreprocessSpec as a dict (input size, colour space incl.
                     the paper's HLS gains, normalisation mean/std)
    tiling           preprocess.TilingSpec as a dict (tile size, stride, max tiles, and
                     the local/global combination rule)
    calibration      scoring.CalibrationSpec as a dict (none / temperature / Platt a, b)
    model_version    a string shown in every response, e.g. "forensic-2025.06.01-ab12cd"
    placeholder      True for untrained weights (tests, the fallback): responses say so
    training         JSON-like metadata: dataset, recipe, metrics, dates, git commit ...
    consistency      (version 2) consistency.ConsistencySpec as a dict (patch sampling,
                     feature set, context, scorer and its calibration) for the patch
                     archs (models.EMBEDDING_ARCHS), None for every other arch; version-1
                     files have no such key and load with None

Only plain containers, numbers, strings and tensors are stored, so files load with
torch.load(weights_only=True): opening a checkpoint never runs code from it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import tempfile
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from services.synthesis.consistency import ConsistencySpec
from services.synthesis.models import ARCHS, EMBEDDING_ARCHS, build_model
from services.synthesis.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PreprocessSpec,
    TilingSpec,
    spec_from_dict,
    spec_to_dict,
)
from services.synthesis.scoring import CalibrationSpec

FORMAT = "imagetrust.synthesis.checkpoint"
# Bump on any incompatible change of the keys below. 2: the "consistency" key.
FORMAT_VERSION = 2
# Keys every version has; version 2 adds "consistency" (OPTIONAL_KEYS: absent reads as None).
KEYS = (
    "format",
    "format_version",
    "arch",
    "arch_kwargs",
    "state_dict",
    "preprocessing",
    "tiling",
    "calibration",
    "model_version",
    "placeholder",
    "training",
)
OPTIONAL_KEYS = ("consistency",)


class CheckpointError(ValueError):
    """The file is not a usable synthesis checkpoint (says why)."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    arch: str
    arch_kwargs: dict[str, Any]
    state_dict: Mapping[str, torch.Tensor]
    preprocessing: PreprocessSpec
    tiling: TilingSpec
    calibration: CalibrationSpec
    model_version: str
    placeholder: bool = False
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    # The patch-consistency scoring of the embedding archs; None for image (CNN) archs.
    consistency: ConsistencySpec | None = None

    def __post_init__(self) -> None:
        embedding = self.arch in EMBEDDING_ARCHS
        if embedding and self.consistency is None:
            raise CheckpointError(f"arch {self.arch!r} scores patches and needs a consistency spec")
        if not embedding and self.consistency is not None:
            raise CheckpointError(f"arch {self.arch!r} scores images; a consistency spec belongs to {EMBEDDING_ARCHS}")

    def build(self, device: torch.device | str = "cpu") -> nn.Module:
        """The model with these weights, in eval mode, on device. Strict: every tensor must match."""
        model = build_model(self.arch, **self.arch_kwargs)
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"weights do not fit arch {self.arch!r} {self.arch_kwargs}: {exc}") from exc
        return model.to(device).eval()

    def describe(self) -> str:
        """The human-readable preprocessing line of DetectResponse.preprocessing."""
        c = self.consistency
        if c is not None:
            s = c.sampling
            context = " + image context" if c.context else ""
            features = s.feature_set if c.features == "traces" else c.features
            return (
                f"patches {s.patch}px native, stride >= {s.min_stride}, max {s.max_patches}, "
                f"min {s.min_valid_patches} valid; features {features}{context}; "
                f"scorer {c.scorer.method} top {c.scorer.top_fraction:g}, platt a={c.scorer.a:.4g} b={c.scorer.b:.4g}"
            )
        return f"{self.preprocessing.describe()}; {self.tiling.describe()}; calibration {self.calibration.method}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "arch": self.arch,
            "arch_kwargs": _plain(self.arch_kwargs),
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in self.state_dict.items()},
            "preprocessing": spec_to_dict(self.preprocessing),
            "tiling": spec_to_dict(self.tiling),
            "calibration": spec_to_dict(self.calibration),
            "model_version": self.model_version,
            "placeholder": bool(self.placeholder),
            "training": _plain(self.training),
            "consistency": None if self.consistency is None else _plain(self.consistency.to_dict()),
        }

    def save(self, path: str | os.PathLike) -> pathlib.Path:
        """Writes atomically (temp file + rename): a crash never leaves half a checkpoint
        where a server would load it."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            torch.save(self.to_dict(), tmp)
            os.replace(tmp, path)
        except BaseException:
            pathlib.Path(tmp).unlink(missing_ok=True)
            raise
        return path


def _plain(value: Any) -> Any:
    """Tuples to lists, and a check that the value is JSON-like (weights_only-safe)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(f"checkpoint metadata must be JSON-like; got {type(value).__name__}: {value!r}")


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | Mapping[str, torch.Tensor],
    *,
    arch: str,
    model_version: str,
    arch_kwargs: Mapping[str, Any] | None = None,
    preprocessing: PreprocessSpec | None = None,
    tiling: TilingSpec | None = None,
    calibration: CalibrationSpec | None = None,
    training: Mapping[str, Any] | None = None,
    placeholder: bool = False,
    consistency: ConsistencySpec | None = None,
) -> Checkpoint:
    """Saves model (or its state_dict) with everything serving needs; returns the Checkpoint.

    Unset specs default to `default_specs(arch)`; say them explicitly in training.
    `consistency` is required for the patch archs (EMBEDDING_ARCHS) and refused for others.
    """
    if arch not in ARCHS:
        raise CheckpointError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
    default_pre, default_tiling = default_specs(arch)
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    ckpt = Checkpoint(
        arch=arch,
        arch_kwargs=_plain(dict(arch_kwargs or {})),
        state_dict=state,
        preprocessing=preprocessing or default_pre,
        tiling=tiling or default_tiling,
        calibration=calibration or CalibrationSpec(),
        model_version=model_version,
        placeholder=placeholder,
        training=_plain(dict(training or {})),
        consistency=consistency,
    )
    json.dumps(ckpt.training)  # fail at save time, not when an operator inspects it
    ckpt.save(path)
    return ckpt


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Reads and validates a checkpoint (weights_only: never executes pickled code)."""
    path = pathlib.Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an ImageTrust synthesis checkpoint (no format {FORMAT!r})")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {version!r}; this server reads up to {FORMAT_VERSION} (upgrade the server)"
        )
    missing = [k for k in KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: missing keys {missing}")
    if raw["arch"] not in ARCHS:
        raise CheckpointError(f"{path}: unknown arch {raw['arch']!r}; this server knows {', '.join(ARCHS)}")
    raw_consistency = raw.get("consistency")
    if raw_consistency is not None and not isinstance(raw_consistency, dict):
        raise CheckpointError(f"{path}: consistency must be a dict or None, got {type(raw_consistency).__name__}")
    try:
        consistency = None if raw_consistency is None else ConsistencySpec.from_dict(raw_consistency)
        return Checkpoint(
            arch=raw["arch"],
            arch_kwargs=dict(raw["arch_kwargs"]),
            state_dict=raw["state_dict"],
            preprocessing=spec_from_dict(PreprocessSpec, raw["preprocessing"]),
            tiling=spec_from_dict(TilingSpec, raw["tiling"]),
            calibration=spec_from_dict(CalibrationSpec, raw["calibration"]),
            model_version=str(raw["model_version"]),
            placeholder=bool(raw["placeholder"]),
            training=dict(raw["training"]),
            format_version=version,
            consistency=consistency,
        )
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: invalid specs: {exc}") from exc


# Splicebuster's co-occurrence histogram: 3^4 bins (traces.cooccurrence_features).
SPLICEBUSTER_FEATURES = 81


def model_input_shapes(ckpt: Checkpoint) -> list[tuple[int, ...]]:
    """The shapes of the model inputs serving feeds: (C, H, W) views and tiles for the image
    archs, (F,) feature rows for the patch archs."""
    if ckpt.arch in EMBEDDING_ARCHS:
        default = SPLICEBUSTER_FEATURES if ckpt.arch == "splicebuster" else None
        features = ckpt.arch_kwargs.get("in_features", default)
        if not isinstance(features, int) or features < 1:
            raise ValueError(f"arch {ckpt.arch!r} checkpoint declares no in_features")
        return [(features,)]
    size = ckpt.preprocessing.input_size
    shapes: list[tuple[int, ...]] = [(3, size, size)]
    if ckpt.tiling.enabled and ckpt.tiling.tile_size != size:
        shapes.append((3, ckpt.tiling.tile_size, ckpt.tiling.tile_size))
    return shapes


# --- Recommended specs per architecture -------------------------------------------------

# The forensic model reads residuals in grey levels: inputs stay in 0..255 units (mean 0,
# std 1/255), so its truncation threshold means "grey levels" whatever the normalisation.
FORENSIC_MEAN = (0.0, 0.0, 0.0)  # [0, 1] units
FORENSIC_STD = (1 / 255, 1 / 255, 1 / 255)  # [0, 1] units: output in grey levels


def paper_specs(input_size: int = 224) -> tuple[PreprocessSpec, TilingSpec]:
    """The paper's recipe exactly: 224x224, HLS with lightness x1.2 and saturation x0.9
    (OpenCV), ImageNet mean/std; the whole image only (no tiles)."""
    return (
        PreprocessSpec(
            input_size=input_size,
            colour_space="hls_rgb",
            lightness_gain=1.2,
            saturation_gain=0.9,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        ),
        TilingSpec(tile_size=0),
    )


def default_specs(arch: str) -> tuple[PreprocessSpec, TilingSpec]:
    """Our recommended preprocessing and tiling for arch (training may choose others and
    records them in the checkpoint; serving follows the checkpoint, not this function)."""
    if arch in EMBEDDING_ARCHS:
        # Patch archs never see a resized image: the consistency spec samples native
        # patches, so these specs are unused placeholders (no tiles).
        return PreprocessSpec(), TilingSpec(tile_size=0)
    if arch in ("forensic", "tiny"):
        size = 256 if arch == "forensic" else 64  # px: forensic tiles keep 8x8 JPEG blocks whole
        return (
            PreprocessSpec(input_size=size, colour_space="rgb", mean=FORENSIC_MEAN, std=FORENSIC_STD),
            TilingSpec(
                tile_size=size, stride=size, max_tiles=16, local_aggregate="top_k_mean", top_k=2, global_weight=0.4
            ),
        )
    pre, _ = paper_specs()
    return pre, TilingSpec(
        tile_size=224, stride=224, max_tiles=16, local_aggregate="top_k_mean", top_k=2, global_weight=0.5
    )
