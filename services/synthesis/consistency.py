"""Scoring an image by the consistency of its patches: the outlying region, a heatmap, and
a calibrated probability.

Two scorers share one output:
- "embedding" (the trained model): every pair of valid patches gets P(different
  pipelines) = sigmoid(pair_scale * |e_i - e_j|^2 + pair_bias) from the embedder. A patch's
  outlier score is its mean P(different) to all others: in a composite, donor patches
  disagree with most of the image; in a genuine photo nobody does. The image statistic is
  the mean of the top `top_fraction` outlier scores, so a donor covering a few percent of
  the patches still moves it.
- "gaussian_outlier" (Splicebuster, Cozzolino, Poggi & Verdoliva 2015): the co-occurrence
  features are reduced by PCA, then EM fits a Gaussian (the host camera) plus a uniform
  (anything else) model. A patch's outlier score is its posterior of the uniform
  component; the image statistic is the mean of the top `top_fraction` Mahalanobis
  distances to the Gaussian, over the feature dimension.

The statistic goes through a logistic (Platt) calibration fitted on held-out genuine photos
(untouched and re-saved) and composites (training/fit_scorer.py), so the score reads as a
probability. Fewer than min_valid_patches valid patches: no score, `uncertain`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from services.synthesis import traces
from services.synthesis.traces import PatchGrid, SamplingSpec

SCORERS = ("embedding", "gaussian_outlier")


@dataclasses.dataclass(frozen=True)
class ScorerSpec:
    method: str = "embedding"
    # Fraction of valid patches whose outlier scores make the image statistic: 5% measured
    # best on validation composites (smaller: noisy; larger: dilutes small donors).
    top_fraction: float = 0.05
    pair_scale: float = 4.0  # per squared embedding distance; copied from the trained model
    pair_bias: float = -4.0  # logits
    pca_dims: int = 8  # gaussian_outlier: feature dimensions kept
    em_iterations: int = 8  # gaussian_outlier: EM steps (converges in ~5 on real photos)
    # Platt calibration of the statistic: score = sigmoid(a * statistic + b).
    a: float = 1.0
    b: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in SCORERS:
            raise ValueError(f"scorer method must be one of {SCORERS}")
        if not 0 < self.top_fraction <= 1:
            raise ValueError("top_fraction must be in (0, 1]")


@dataclasses.dataclass(frozen=True)
class ConsistencySpec:
    """Everything a consistency checkpoint needs beyond its weights."""

    sampling: SamplingSpec = dataclasses.field(default_factory=SamplingSpec)
    scorer: ScorerSpec = dataclasses.field(default_factory=ScorerSpec)
    features: str = "traces"  # traces.FEATURES key
    context: bool = True  # embedder input is [f, f - image median]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sampling": dataclasses.asdict(self.sampling),
            "scorer": dataclasses.asdict(self.scorer),
            "features": self.features,
            "context": self.context,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ConsistencySpec:
        return cls(
            sampling=SamplingSpec(**raw["sampling"]),
            scorer=ScorerSpec(**raw["scorer"]),
            features=str(raw["features"]),
            context=bool(raw["context"]),
        )


@dataclasses.dataclass(frozen=True)
class ConsistencyScore:
    score: float  # calibrated probability in [0, 1]; 0 when uncertain
    statistic: float  # the raw image statistic before calibration
    uncertain: bool
    valid_patches: int
    # rows x cols outlier scores in [0, 1] on the patch grid; invalid patches are 0.
    heatmap: tuple[tuple[float, ...], ...] | None


def _sigmoid(z: np.ndarray | float) -> Any:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def _top_mean(values: np.ndarray, fraction: float) -> float:
    k = max(1, math.ceil(fraction * len(values)))
    return float(np.sort(values)[-k:].mean())


def embedding_outliers(emb: np.ndarray, spec: ScorerSpec) -> np.ndarray:
    """Per patch: mean P(different) to every other patch. emb (N, E) unit rows."""
    n = len(emb)
    e = emb.astype(np.float64)
    d = np.clip(2.0 - 2.0 * (e @ e.T), 0.0, 4.0)
    p = _sigmoid(spec.pair_scale * d + spec.pair_bias)
    np.fill_diagonal(p, 0.0)
    return p.sum(axis=1) / max(1, n - 1)


def gaussian_outliers(feats: np.ndarray, spec: ScorerSpec) -> tuple[np.ndarray, np.ndarray]:
    """Splicebuster's Gaussian + uniform EM. Returns (outlier posterior, Mahalanobis d^2 / dims)."""
    x = feats.astype(np.float64)
    x = x - x.mean(axis=0)
    # PCA via SVD: the co-occurrence histogram's bins are strongly correlated.
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    dims = min(spec.pca_dims, vt.shape[0])
    z = x @ vt[:dims].T
    span = z.max(axis=0) - z.min(axis=0) + 1e-9
    log_uniform = -float(np.log(span).sum())  # density of a uniform over the data's box
    w = np.ones(len(z))  # responsibility of the Gaussian
    prior = 0.9  # P(host camera) at the start: most of an image is the host
    d2 = np.zeros(len(z))
    for _ in range(spec.em_iterations):
        mu = (w[:, None] * z).sum(axis=0) / w.sum()
        c = z - mu
        cov = (w[:, None] * c).T @ c / w.sum() + 1e-6 * np.eye(dims)
        inv = np.linalg.inv(cov)
        d2 = np.einsum("ij,jk,ik->i", c, inv, c)
        _, logdet = np.linalg.slogdet(cov)
        log_g = -0.5 * (d2 + logdet + dims * math.log(2 * math.pi))
        a = math.log(prior) + log_g
        b = math.log(1 - prior) + log_uniform
        w = _sigmoid(a - b)
        prior = float(np.clip(w.mean(), 0.5, 0.999))
    return 1.0 - w, d2 / dims


@dataclasses.dataclass(frozen=True)
class PreparedPatches:
    """One image ready for the model: the grid, which patches are valid, and the model's
    input rows (valid patches only, row-major order)."""

    grid: PatchGrid
    valid: np.ndarray  # (len(grid),) bool
    inputs: np.ndarray  # (valid.sum(), F) float32
    width: int
    height: int


def prepare_patches(image: np.ndarray, spec: ConsistencySpec) -> PreparedPatches:
    """RGB uint8 (H, W, 3) -> the model inputs, exactly as serving computes them. Features
    are computed for valid patches only (flat or clipped ones are never scored)."""
    h, w = image.shape[:2]
    grid = traces.patch_grid(h, w, spec.sampling)
    if not len(grid):
        return PreparedPatches(grid, np.zeros(0, bool), np.zeros((0, 0), np.float32), w, h)
    patches = traces.grid_patches(image, grid)
    valid = traces.valid_mask(patches, spec.sampling)
    if valid.sum() < spec.sampling.min_valid_patches:
        return PreparedPatches(grid, valid, np.zeros((0, 0), np.float32), w, h)
    feats = traces.FEATURES[spec.features](patches[valid])
    if spec.context:
        feats = traces.with_context(feats, np.ones(len(feats), bool))
    return PreparedPatches(grid, valid, np.ascontiguousarray(feats, dtype=np.float32), w, h)


def score_patches(
    outputs: np.ndarray, valid: np.ndarray, grid: PatchGrid, spec: ConsistencySpec, want_heatmap: bool = False
) -> ConsistencyScore:
    """outputs: the model's rows for the VALID patches only (embeddings or features)."""
    n_valid = int(valid.sum())
    if n_valid < spec.sampling.min_valid_patches:
        return ConsistencyScore(0.0, 0.0, True, n_valid, None)
    sc = spec.scorer
    if sc.method == "embedding":
        outlier = embedding_outliers(outputs, sc)
        statistic = _top_mean(outlier, sc.top_fraction)
    else:
        outlier, d2 = gaussian_outliers(outputs, sc)
        statistic = _top_mean(d2, sc.top_fraction)
    score = float(np.clip(_sigmoid(sc.a * statistic + sc.b), 0.0, 1.0))
    heatmap = None
    if want_heatmap and len(grid):
        full = np.zeros(len(grid), dtype=np.float64)
        full[np.flatnonzero(valid)] = outlier
        rows = full.reshape(grid.rows, grid.cols)
        heatmap = tuple(tuple(float(v) for v in row) for row in rows)
    return ConsistencyScore(score, float(statistic), False, n_valid, heatmap)
