"""Scores encoded images exactly as the synthesis service does, for evaluation.

decode (services.common.imaging.decode_rgb, the service's decoder) -> prepare (global view
+ native tiles, services.synthesis.preprocess) -> one forward pass per input shape ->
score (calibration + local/global rule, services.synthesis.scoring.image_scores). Only the batching
differs from the live service, and batching does not change a model's outputs in eval mode.

Consistency checkpoints (models.EMBEDDING_ARCHS) go the service's patch path: decode ->
consistency.prepare_patches (grid, validity, features of the valid patches) -> the model over
the feature rows in batches -> consistency.score_patches. consistency_scores() keeps the
statistic and `uncertain` for the evaluator; score() returns the final scores (0 when
uncertain, as served).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from services.common.imaging import decode_rgb
from services.synthesis import consistency, preprocess, scoring
from services.synthesis.checkpoint import Checkpoint

MAX_PIXELS = 120_000_000  # pixels: the service's default decode limit
BATCH = 32  # model inputs per forward pass
PATCH_BATCH = 512  # patch feature rows per forward pass (the service's max_batch_size)


@dataclasses.dataclass(frozen=True)
class ImageLogits:
    """Raw logits of one image: [global, tiles...], and its tile grid. Kept raw so that
    the local/global rule and calibration can be refitted without another forward pass."""

    logits: tuple[float, ...]
    grid: preprocess.TileGrid | None


def _decode(item: bytes | np.ndarray) -> np.ndarray:
    return np.asarray(decode_rgb(item, MAX_PIXELS)) if isinstance(item, (bytes, bytearray)) else item


def _forward(model: nn.Module, inputs: list[torch.Tensor], device: torch.device) -> list[float]:
    out: list[float] = []
    with torch.inference_mode():
        for i in range(0, len(inputs), BATCH):
            out.extend(model(torch.stack(inputs[i : i + BATCH]).to(device)).float().cpu().tolist())
    return out


def image_logits(
    model: nn.Module,
    ckpt_pre: preprocess.PreprocessSpec,
    tiling: preprocess.TilingSpec,
    images: Iterable[bytes | np.ndarray],
    device: torch.device | str = "cpu",
) -> list[ImageLogits]:
    """Logits of every model input of every image (bytes are decoded like the service does)."""
    device = torch.device(device)
    prepared = []
    for item in images:
        prepared.append(preprocess.prepare(_decode(item), ckpt_pre, tiling))
    # Group same-shaped inputs (all global views; tiles of one size) into batches.
    flat = [(i, j, x) for i, p in enumerate(prepared) for j, x in enumerate(p.items())]
    by_shape: dict[tuple[int, ...], list[tuple[int, int, torch.Tensor]]] = {}
    for entry in flat:
        by_shape.setdefault(tuple(entry[2].shape), []).append(entry)
    logits: list[list[float]] = [[0.0] * len(p.items()) for p in prepared]
    for entries in by_shape.values():
        for (i, j, _), z in zip(entries, _forward(model, [e[2] for e in entries], device)):
            logits[i][j] = z
    return [ImageLogits(tuple(z), p.grid) for z, p in zip(logits, prepared)]


def final_scores(
    raw: Sequence[ImageLogits], tiling: preprocess.TilingSpec, calibration: scoring.CalibrationSpec
) -> np.ndarray:
    """The service's final scores (scoring.image_scores) for precomputed logits."""
    return np.array([scoring.image_scores(list(r.logits), r.grid, tiling, calibration).score for r in raw])


def score(
    ckpt: Checkpoint,
    images: Iterable[bytes | np.ndarray],
    device: torch.device | str = "cpu",
    model: nn.Module | None = None,
) -> np.ndarray:
    """Final scores in [0, 1] of images under the checkpoint's own preprocessing and rule
    (consistency checkpoints: the patch scorer; 0 for uncertain images, as served)."""
    if ckpt.consistency is not None:
        return np.array([c.score for c in consistency_scores(ckpt, images, device, model)], dtype=np.float64)
    model = model if model is not None else ckpt.build(device)
    raw = image_logits(model, ckpt.preprocessing, ckpt.tiling, images, device)
    return final_scores(raw, ckpt.tiling, ckpt.calibration)


def scores_and_uncertain(
    ckpt: Checkpoint,
    images: Iterable[bytes | np.ndarray],
    device: torch.device | str = "cpu",
    model: nn.Module | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(final scores, uncertain flags) of every image; CNN checkpoints are never uncertain."""
    if ckpt.consistency is not None:
        results = consistency_scores(ckpt, images, device, model)
        return np.array([r.score for r in results]), np.array([r.uncertain for r in results])
    scores = score(ckpt, images, device, model)
    return scores, np.zeros(len(scores), dtype=bool)


def consistency_scores(
    ckpt: Checkpoint,
    images: Iterable[bytes | np.ndarray],
    device: torch.device | str = "cpu",
    model: nn.Module | None = None,
    want_heatmap: bool = False,
) -> list[consistency.ConsistencyScore]:
    """The service's consistency result of every image (score, statistic, uncertain, valid
    patches, heatmap when asked) for a consistency checkpoint."""
    spec = ckpt.consistency
    if spec is None:
        raise ValueError(f"arch {ckpt.arch!r} is not a consistency checkpoint")
    model = model if model is not None else ckpt.build(device)
    return patch_scores(model, spec, images, device, want_heatmap)


def patch_scores(
    model: nn.Module,
    spec: consistency.ConsistencySpec,
    images: Iterable[bytes | np.ndarray],
    device: torch.device | str = "cpu",
    want_heatmap: bool = False,
) -> list[consistency.ConsistencyScore]:
    """consistency_scores for a model and spec not (yet) in a checkpoint (calibration)."""
    device = torch.device(device)
    results = []
    for item in images:
        prepared = consistency.prepare_patches(_decode(item), spec)
        outputs = np.zeros((0, 0), dtype=np.float32)
        if len(prepared.inputs):
            rows = []
            with torch.inference_mode():
                for i in range(0, len(prepared.inputs), PATCH_BATCH):
                    x = torch.from_numpy(prepared.inputs[i : i + PATCH_BATCH]).to(device)
                    rows.append(model(x).float().cpu().numpy())
            outputs = np.concatenate(rows)
        results.append(consistency.score_patches(outputs, prepared.valid, prepared.grid, spec, want_heatmap))
    return results
