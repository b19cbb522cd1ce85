"""From logits to the scores in the response: calibration, then the local/global rule.

Scoring as the bank lab's article describes it: a continuous score in [0, 1] (regression,
not a yes/no), from local regions and the global image together. The rule and its
parameters come from the checkpoint (TilingSpec, CalibrationSpec), never from code.
"""

from __future__ import annotations

import dataclasses
import math

from services.synthesis.preprocess import TileGrid, TilingSpec

CALIBRATIONS = ("none", "temperature", "platt")


@dataclasses.dataclass(frozen=True)
class CalibrationSpec:
    """Maps a logit z to a probability. Stored in every checkpoint.

    none: sigmoid(z); temperature: sigmoid(z / temperature) (Guo et al. 2017);
    platt: sigmoid(a * z + b) (Platt 1999), fitted on held-out data by training.
    """

    method: str = "none"
    temperature: float = 1.0  # > 0, dimensionless
    a: float = 1.0  # Platt slope, dimensionless
    b: float = 0.0  # Platt intercept, logits

    def __post_init__(self) -> None:
        if self.method not in CALIBRATIONS:
            raise ValueError(f"calibration method must be one of {CALIBRATIONS}")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")

    def probability(self, logit: float) -> float:
        if self.method == "temperature":
            z = logit / self.temperature
        elif self.method == "platt":
            z = self.a * logit + self.b
        else:
            z = logit
        # Numerically stable sigmoid for large |z|.
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)


@dataclasses.dataclass(frozen=True)
class Scores:
    score: float
    global_score: float
    local_score: float  # 0 without tiles
    heatmap: tuple[tuple[float, ...], ...] | None  # rows x cols tile scores


def local_aggregate(tile_scores: list[float], tiling: TilingSpec) -> float:
    if tiling.local_aggregate == "max":
        return max(tile_scores)
    if tiling.local_aggregate == "mean":
        return sum(tile_scores) / len(tile_scores)
    top = sorted(tile_scores, reverse=True)[: tiling.top_k]
    return sum(top) / len(top)


def image_scores(
    logits: list[float], grid: TileGrid | None, tiling: TilingSpec, calibration: CalibrationSpec
) -> Scores:
    """logits[0] is the global view, logits[1:] the tiles row-major."""
    probs = [min(1.0, max(0.0, calibration.probability(z))) for z in logits]
    global_score = probs[0]
    if grid is None or len(probs) == 1:
        return Scores(global_score, global_score, 0.0, None)
    tile_scores = probs[1:]
    local = local_aggregate(tile_scores, tiling)
    score = tiling.global_weight * global_score + (1.0 - tiling.global_weight) * local
    heatmap = tuple(tuple(tile_scores[r * grid.cols : (r + 1) * grid.cols]) for r in range(grid.rows))
    return Scores(min(1.0, max(0.0, score)), global_score, local, heatmap)
