"""Camera-trace features of native-resolution patches: what the consistency model embeds.

A composite is an image whose parts disagree about how they were made: sensor noise level
and its dependence on brightness, demosaicing correlations between colour channels, the
JPEG quantisation each part went through and where its 8x8 grid lies, resampling
periodicities, sharpening. None of those depend on what the photo shows, so a model that
compares them across an image generalises to forgers it never saw (Splicebuster, Noiseprint,
EXIF self-consistency; docs/synthesis.md).

Patches are cut at native resolution (never resized) on a grid aligned to the image's 8x8
JPEG grid, so block-DCT features read the last encoder's quantisation and a donor pasted off
that grid shows up as a phase shift. Flat, clipped or saturated patches carry no trace and
are marked invalid instead of being scored.

Everything here is vectorised numpy over all patches of an image; one 12 MP photo's 512
patches take a few hundred ms on one core (bench/bench_synthesis.py).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

# 64 px: eight JPEG blocks a side, enough pixels for stable noise statistics, small enough
# that a pasted object of ~2% of a 12 MP photo still covers several whole patches.
PATCH = 64
BLOCK = 8  # px: the JPEG block
FEATURE_SET = "traces-v1"


@dataclasses.dataclass(frozen=True)
class SamplingSpec:
    """How patches are laid on an image; stored in every consistency checkpoint."""

    patch: int = PATCH  # px, square, native resolution
    # px: the grid's step never drops below this, so small images do not give hundreds of
    # nearly identical overlapping patches.
    min_stride: int = 32
    # Patches per image at most: bounds time and memory whatever the image size (a 12 MP
    # photo is sampled with a stride of ~150 px instead of 64).
    max_patches: int = 512
    # A patch with more than this fraction of clipped pixels (<= 2 or >= 253 in any
    # channel) is invalid: clipping erases noise and quantisation traces.
    max_clipped: float = 0.1
    # Grey levels: a patch whose luma high-pass residual has a smaller std is flat (sky,
    # walls, or compressed to nothing) and carries no camera trace.
    min_residual_std: float = 0.35
    # Fewer valid patches than this and the image is "uncertain": no score is given.
    min_valid_patches: int = 16
    feature_set: str = FEATURE_SET

    def __post_init__(self) -> None:
        if self.patch % BLOCK or self.patch < 2 * BLOCK:
            raise ValueError(f"patch must be a multiple of {BLOCK} and >= {2 * BLOCK}")
        if self.min_stride % BLOCK or self.min_stride < BLOCK:
            raise ValueError(f"min_stride must be a positive multiple of {BLOCK}")
        if self.max_patches < 1 or self.min_valid_patches < 2:
            raise ValueError("max_patches must be >= 1 and min_valid_patches >= 2")
        if self.feature_set != FEATURE_SET:
            raise ValueError(f"unknown feature_set {self.feature_set!r}; this server computes {FEATURE_SET!r}")


@dataclasses.dataclass(frozen=True)
class PatchGrid:
    """Top-left corners of the patches: rows x cols, row-major."""

    ys: tuple[int, ...]
    xs: tuple[int, ...]
    stride: int  # px between neighbouring patches
    patch: int

    @property
    def rows(self) -> int:
        return len(self.ys)

    @property
    def cols(self) -> int:
        return len(self.xs)

    def __len__(self) -> int:
        return self.rows * self.cols


def patch_grid(height: int, width: int, spec: SamplingSpec) -> PatchGrid:
    """An 8-aligned grid of at most max_patches patches, centred on the image."""
    p = spec.patch
    if height < p or width < p:
        return PatchGrid((), (), spec.min_stride, p)
    stride = spec.min_stride
    while True:
        rows = (height - p) // stride + 1
        cols = (width - p) // stride + 1
        if rows * cols <= spec.max_patches:
            break
        stride += BLOCK
    # Centre the grid, keeping every corner on the 8x8 block grid of the image.
    oy = ((height - p - (rows - 1) * stride) // 2) // BLOCK * BLOCK
    ox = ((width - p - (cols - 1) * stride) // 2) // BLOCK * BLOCK
    return PatchGrid(
        tuple(oy + r * stride for r in range(rows)), tuple(ox + c * stride for c in range(cols)), stride, p
    )


def cut_patches(image: np.ndarray, ys, xs, patch: int = PATCH) -> np.ndarray:
    """(N, patch, patch, 3) uint8 patches at the given top-left corners (all pairs ys x xs
    when both are grids, else zipped when given as equal-length point lists)."""
    out = np.empty((len(ys), patch, patch, 3), dtype=np.uint8)
    for i, (y, x) in enumerate(zip(ys, xs)):
        out[i] = image[y : y + patch, x : x + patch, :3]
    return out


def grid_patches(image: np.ndarray, grid: PatchGrid) -> np.ndarray:
    ys = [y for y in grid.ys for _ in grid.xs]
    xs = [x for _ in grid.ys for x in grid.xs]
    return cut_patches(image, ys, xs, grid.patch)


def _dct_matrix(n: int = BLOCK) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m.astype(np.float32)


_DCT = _dct_matrix()
_DCT2_T = np.kron(_DCT, _DCT).T.copy()  # (64, 64): flattened block (i * 8 + j) -> coefficient (u * 8 + v)
# Zigzag diagonals u + v = 0..14 of the 8x8 DCT: frequency bands for zero-fraction features.
_BAND_MASKS = [np.add.outer(np.arange(BLOCK), np.arange(BLOCK)).reshape(-1) == k for k in range(2 * BLOCK - 1)]


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(x + 1e-3).astype(np.float32)


def _residual_stats(r: np.ndarray) -> list[np.ndarray]:
    """std (log), mean |r| / std, fraction |r| < 0.5 and kurtosis (log) per patch."""
    flat = r.reshape(len(r), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    sq = flat * flat
    var = sq.mean(axis=1) + 1e-6
    std = np.sqrt(var)
    a = np.abs(flat)
    absmean = a.mean(axis=1)
    small = np.count_nonzero(a < 0.5, axis=1) / flat.shape[1]
    kurt = np.einsum("ij,ij->i", sq, sq) / flat.shape[1] / var**2
    return [_log(std), (absmean / std).astype(np.float32), small.astype(np.float32), _log(kurt)]


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)) + 1e-6
    return ((a * b).sum(axis=1) / den).astype(np.float32)


def _filter(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlates every patch of x (N, P, P) with kernel anchored at its top-left, as ONE
    OpenCV pass over the patches stacked vertically (a vectorised, SIMD loop). Outputs that
    would read past a patch's right or bottom edge are the caller's to drop."""
    n, p, _ = x.shape
    out = cv2.filter2D(x.reshape(n * p, p), cv2.CV_32F, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    return out.reshape(n, p, p)


_K_LAP = np.array([[0, -0.25, 0], [-0.25, 1, -0.25], [0, -0.25, 0]], np.float32)
_K_THIRD_H = np.array([[-1, 3, -3, 1]], np.float32)
_K_THIRD_V = _K_THIRD_H.T.copy()
_K_D2_H = np.array([[1, -2, 1]], np.float32)
_K_D2_V = _K_D2_H.T.copy()


def _laplacian(x: np.ndarray) -> np.ndarray:
    """4-neighbour prediction error on the interior, (N, P-2, P-2)."""
    return x[:, 1:-1, 1:-1] - 0.25 * (x[:, :-2, 1:-1] + x[:, 2:, 1:-1] + x[:, 1:-1, :-2] + x[:, 1:-1, 2:])


def _periodicity(d2: np.ndarray, axis: int) -> np.ndarray:
    """Normalised spectrum of the mean |2nd derivative| profile along one axis, 8 bands.

    Resampling with interpolation leaves a periodic pattern in the second derivative
    (Popescu & Farid 2005); a JPEG grid leaves a peak at 1/8.
    """
    prof = np.abs(d2).mean(axis=axis)
    prof = prof - prof.mean(axis=1, keepdims=True)
    spec = np.abs(np.fft.rfft(prof, axis=1))[:, 1:]
    spec = spec / (spec.sum(axis=1, keepdims=True) + 1e-6)
    bands = np.array_split(spec, 8, axis=1)
    return np.stack([b.sum(axis=1) for b in bands], axis=1).astype(np.float32)


def _blockiness(y: np.ndarray) -> np.ndarray:
    """Mean |step| across column (row) boundaries at each phase 0..7, over the mean: where
    the JPEG grid lies in the patch and how strong it is. (N, 16)."""
    dx = np.abs(np.diff(y, axis=2)).mean(axis=1)  # (N, P-1): boundary between x and x+1
    dy = np.abs(np.diff(y, axis=1)).mean(axis=2)
    feats = []
    for d in (dx, dy):
        n = d.shape[1] // BLOCK * BLOCK
        phase = d[:, :n].reshape(len(d), -1, BLOCK).mean(axis=1)
        feats.append(_log(phase) - _log(phase.mean(axis=1, keepdims=True)))
    return np.concatenate(feats, axis=1)


# Patches per vectorised pass: the ~20 float32 intermediates of a chunk (~0.5 MB each) stay
# in cache, and peak memory does not grow with the patch count.
FEATURE_CHUNK = 32


def patch_features(patches: np.ndarray) -> np.ndarray:
    """(N, P, P, 3) uint8 -> (N, F) float32 trace features. Deterministic, content-light;
    each row depends only on its own patch."""
    if patches.ndim != 4 or patches.shape[-1] != 3:
        raise ValueError(f"patches must be (N, P, P, 3), got {patches.shape}")
    n, p = patches.shape[0], patches.shape[1]
    if n == 0:
        return np.zeros((0, feature_count(p)), dtype=np.float32)
    if n > FEATURE_CHUNK:
        return np.concatenate([_features(patches[i : i + FEATURE_CHUNK]) for i in range(0, n, FEATURE_CHUNK)])
    return _features(patches)


def _features(patches: np.ndarray) -> np.ndarray:
    n, p = patches.shape[0], patches.shape[1]
    x = patches.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    feats: list[np.ndarray] = []
    mean_y = y.reshape(n, -1).mean(axis=1)
    feats += [mean_y / 255.0, _log(y.reshape(n, -1).std(axis=1))]
    # Channel min / max elementwise: numpy's reductions over a 3-long last axis are slow.
    u = patches
    lo = np.minimum(np.minimum(u[..., 0], u[..., 1]), u[..., 2])
    hi = np.maximum(np.maximum(u[..., 0], u[..., 1]), u[..., 2])
    clipped = ((lo <= 2) | (hi >= 253)).reshape(n, -1).mean(axis=1)
    feats.append(clipped.astype(np.float32))
    sat = (hi - lo).reshape(n, -1).mean(axis=1, dtype=np.float32) / 255.0
    feats.append(sat.astype(np.float32))
    # Luma residuals: Laplacian, and third-order horizontal / vertical (SRM "3rd").
    lap_r = _filter(r, _K_LAP)[:, : p - 2, : p - 2]
    lap_g = _filter(g, _K_LAP)[:, : p - 2, : p - 2]
    lap_b = _filter(b, _K_LAP)[:, : p - 2, : p - 2]
    lap_y = 0.299 * lap_r + 0.587 * lap_g + 0.114 * lap_b  # the Laplacian is linear
    third_h = _filter(y, _K_THIRD_H)[:, :, : p - 3]
    third_v = _filter(y, _K_THIRD_V)[:, : p - 3, :]
    for res in (lap_y, third_h, third_v):
        feats += _residual_stats(res)
    feats.append(_log(third_h.reshape(n, -1).std(axis=1)) - _log(third_v.reshape(n, -1).std(axis=1)))
    # Per-channel residuals and their correlations: demosaicing and chroma subsampling.
    for res in (lap_r, lap_g, lap_b):
        feats.append(_log(res.reshape(n, -1).std(axis=1)))
    feats += [_corr(lap_r, lap_g), _corr(lap_g, lap_b), _corr(lap_r, lap_b)]
    lap_cb, lap_cr = lap_b - lap_y, lap_r - lap_y
    lap_std = lap_y.reshape(n, -1).std(axis=1)
    for res in (lap_cb, lap_cr):
        feats.append(_log(res.reshape(n, -1).std(axis=1)) - _log(lap_std))
    # Noise level against brightness: residual std in the darker and brighter halves of
    # each patch (sensor noise grows with signal; processing flattens that curve).
    inner = y[:, 1:-1, 1:-1]
    med = np.median(inner.reshape(n, -1), axis=1)[:, None, None]
    dark = inner <= med
    sq = lap_y**2
    dark_var = (sq * dark).reshape(n, -1).sum(axis=1) / (dark.reshape(n, -1).sum(axis=1) + 1)
    bright_var = (sq * ~dark).reshape(n, -1).sum(axis=1) / ((~dark).reshape(n, -1).sum(axis=1) + 1)
    feats.append(_log(np.sqrt(bright_var)) - _log(np.sqrt(dark_var)))
    # Block DCT of luma on the image's 8x8 grid: log mean |coef| per frequency (64) and the
    # fraction of zeroed coefficients per zigzag band (15): the last quantisation table.
    blocks = (y - 128.0).reshape(n, p // BLOCK, BLOCK, p // BLOCK, BLOCK).transpose(0, 1, 3, 2, 4)
    # The 2-D DCT of every block as one GEMM with kron(D, D): coefficient (u, v) at u * 8 + v.
    coef = (blocks.reshape(-1, BLOCK * BLOCK) @ _DCT2_T).reshape(n, -1, BLOCK * BLOCK)
    mag = np.abs(coef)
    feats.append(_log(mag.mean(axis=1)).T)
    zero = (mag < 0.5).mean(axis=1)  # (n, 64)
    band_zero = np.stack([zero[:, m].mean(axis=1) for m in _BAND_MASKS], axis=1)
    feats.append(band_zero.astype(np.float32).T)
    # Resampling periodicity of the luma second derivative, both axes.
    d2x = _filter(y, _K_D2_H)[:, :, : p - 2]
    d2y = _filter(y, _K_D2_V)[:, : p - 2, :]
    feats.append(_periodicity(d2x, axis=1).T)
    feats.append(_periodicity(d2y, axis=2).T)
    feats.append(_blockiness(y).T)
    cols = [f[None, :] if f.ndim == 1 else f for f in feats]
    out = np.concatenate(cols, axis=0).T.astype(np.float32)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def feature_count(patch: int = PATCH) -> int:
    # 4 global + 3x4 residual stats + 1 h/v + 3 + 3 + 2 chroma + 1 noise curve + 64 + 15
    # + 8 + 8 periodicity + 16 blockiness.
    return 4 + 12 + 1 + 3 + 3 + 2 + 1 + 64 + 15 + 8 + 8 + 16


def valid_mask(patches: np.ndarray, spec: SamplingSpec) -> np.ndarray:
    """Which patches carry traces: not clipped, not flat. (N,) bool."""
    n = len(patches)
    if n == 0:
        return np.zeros(0, dtype=bool)
    lo = np.minimum(np.minimum(patches[..., 0], patches[..., 1]), patches[..., 2])
    hi = np.maximum(np.maximum(patches[..., 0], patches[..., 1]), patches[..., 2])
    clipped = ((lo <= 2) | (hi >= 253)).reshape(n, -1).mean(axis=1)
    x = patches.astype(np.float32)
    y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    lap_std = _laplacian(y).reshape(n, -1).std(axis=1)
    return (clipped <= spec.max_clipped) & (lap_std >= spec.min_residual_std)


def with_context(features: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[f, f - median of the image's valid patches]: each patch seen against its image, so
    the embedder can tell "unusual here" from "unusual anywhere"."""
    ref = features[valid] if valid.any() else features
    med = np.median(ref, axis=0, keepdims=True) if len(ref) else np.zeros((1, features.shape[1]), np.float32)
    return np.concatenate([features, features - med], axis=1).astype(np.float32)


# --- Splicebuster's local features (Cozzolino, Poggi & Verdoliva, WIFS 2015) -------------

SB_Q = 2.0  # grey levels: the residual's quantisation step
SB_T = 1  # truncation: residual symbols in {-1, 0, 1}


def cooccurrence_features(patches: np.ndarray) -> np.ndarray:
    """Splicebuster's features: 3rd-order high-pass residual of luma, quantised and
    truncated to {-T..T}, then the histogram of 4-pixel co-occurrences along rows and
    columns (3^4 = 81 bins each, summed), square-rooted (Hellinger). (N, 81)."""
    n = len(patches)
    if n == 0:
        return np.zeros((0, (2 * SB_T + 1) ** 4), dtype=np.float32)
    x = patches.astype(np.float32)
    y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    levels = 2 * SB_T + 1
    hist = np.zeros((n, levels**4), dtype=np.float32)
    for res in (
        y[:, :, 3:] - 3 * y[:, :, 2:-1] + 3 * y[:, :, 1:-2] - y[:, :, :-3],
        (y[:, 3:, :] - 3 * y[:, 2:-1, :] + 3 * y[:, 1:-2, :] - y[:, :-3, :]).transpose(0, 2, 1),
    ):
        q = (np.clip(np.round(res / SB_Q), -SB_T, SB_T) + SB_T).astype(np.int64)
        code = q[:, :, :-3] * levels**3 + q[:, :, 1:-2] * levels**2 + q[:, :, 2:-1] * levels + q[:, :, 3:]
        code = code.reshape(n, -1) + (np.arange(n) * levels**4)[:, None]
        hist += np.bincount(code.ravel(), minlength=n * levels**4).reshape(n, -1).astype(np.float32)
    hist /= hist.sum(axis=1, keepdims=True)
    return np.sqrt(hist)


FEATURES = {"traces": patch_features, "cooccurrence": cooccurrence_features}
