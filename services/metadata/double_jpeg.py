"""Aligned double JPEG compression from DCT-coefficient histograms.

A JPEG saved once has, per DCT frequency, a smooth (roughly Laplacian) histogram of
quantised coefficients. Decompressed and saved again with a different table, the second
quantisation maps the first one's lattice unevenly: some bins collect two first-pass
values and others none, so the histogram gets periodic peaks or holes (Popescu & Farid
2004; Lukas & Fridrich 2003). We recover the final coefficients from the decoded pixels
(an orthonormal 8x8 DCT of the luminance equals JPEG's FDCT), quantise them with the
file's own table, and measure how far each bin departs from the geometric mean of its
neighbours. It only sees re-saves on the same 8x8 grid (no resize or crop between).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

# Low-frequency AC positions (row, col): they carry enough non-zero coefficients.
FREQUENCIES = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 1), (2, 2))
MAX_BIN = 16  # |k| examined per frequency
MIN_NEIGHBOUR_COUNT = 40  # coefficients a bin's neighbours need before it is judged
# A bin "breaks" the smooth histogram when it is this far, in log ratio, from the
# geometric mean of its neighbours (a factor of 2.5: holes and spikes, not noise).
BREAK_LOG_RATIO = math.log(2.5)
# 8x8 blocks analysed, from the image centre: 16,384 blocks = a 1024x1024 region.
MAX_BLOCKS = 16_384  # blocks
# Breaks needed (share of judged bins, and absolute) to call it double compression;
# calibrated on BSDS500 images saved once vs twice with Pillow (tests/metadata).
MIN_BREAK_SHARE = 0.25
MIN_BREAKS = 3


def _dct_matrix() -> np.ndarray:
    c = np.zeros((8, 8))
    for k in range(8):
        for n in range(8):
            c[k, n] = math.cos(math.pi * (2 * n + 1) * k / 16)
    c[0] *= math.sqrt(1 / 8)
    c[1:] *= math.sqrt(2 / 8)
    return c


_DCT = _dct_matrix()
# The 2-D basis images of the examined frequencies, as columns: one (n, 64) @ (64, 8)
# product gives exactly those coefficients (the full 8x8 DCT computed 64, used 8: it was
# most of the check's time).
# float32 like the blocks: coefficients are within 1e-4 of the float64 ones, far from
# mattering to histograms of integer bins, and the float32 product is 20x faster.
_BASIS = np.stack([np.outer(_DCT[r], _DCT[c]).ravel() for r, c in FREQUENCIES], axis=1).astype(np.float32)
# gemm's third operand, unused (beta 0): an empty matrix, OpenCV's "no array".
_NO_ADDEND = np.empty((0, 0), np.float32)


@dataclasses.dataclass(frozen=True)
class DoubleJpegResult:
    detected: bool
    break_share: float  # share of judged histogram bins that break smoothness
    breaks: int
    judged_bins: int
    blocks: int


def blocks_of(luma: np.ndarray) -> np.ndarray:
    """Centre region of up to MAX_BLOCKS 8x8 blocks, aligned to the JPEG grid."""
    h, w = (luma.shape[0] // 8) * 8, (luma.shape[1] // 8) * 8
    bh, bw = h // 8, w // 8
    side = int(math.sqrt(MAX_BLOCKS))
    by0 = max(0, (bh - side) // 2) if bh > side else 0
    bx0 = max(0, (bw - side) // 2) if bw > side else 0
    by1, bx1 = min(bh, by0 + side), min(bw, bx0 + side)
    region = luma[by0 * 8 : by1 * 8, bx0 * 8 : bx1 * 8]
    nb_y, nb_x = by1 - by0, bx1 - bx0
    # Regrouped as uint8 (the cheap copy), converted once. JPEG's -128 level shift is
    # left out: it only moves the DC term, and every examined frequency is AC (its basis
    # sums to zero), so those coefficients are the same.
    return region.reshape(nb_y, 8, nb_x, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8).astype(np.float32)


def analyse(luma: np.ndarray, qtable: tuple[int, ...]) -> DoubleJpegResult:
    blocks = blocks_of(luma)
    if len(blocks) == 0:
        return DoubleJpegResult(False, 0.0, 0, 0, 0)
    # (n, 8): JPEG FDCT scaling, FREQUENCIES order. OpenCV's single-threaded product, not
    # numpy's: OpenBLAS threads spin on a busy machine and made this 6x slower.
    coefs = cv2.gemm(blocks.reshape(len(blocks), 64), _BASIS, 1.0, _NO_ADDEND, 0.0)
    q = np.asarray(qtable, dtype=np.float32).reshape(8, 8)
    breaks = judged = 0
    for i, (r, c) in enumerate(FREQUENCIES):
        step = float(q[r, c])
        if step <= 1:  # quality-100 style tables keep no lattice to disturb
            continue
        k = np.abs(np.rint(coefs[:, i] / step)).astype(np.int64)
        hist = np.bincount(k[k <= MAX_BIN + 1], minlength=MAX_BIN + 2).astype(np.float64)
        for b in range(2, MAX_BIN + 1):  # bin 1 borders the huge zero bin
            lo, hi = hist[b - 1], hist[b + 1]
            if lo < MIN_NEIGHBOUR_COUNT or hi < MIN_NEIGHBOUR_COUNT:
                continue
            judged += 1
            expected = math.sqrt(lo * hi)
            if abs(math.log((hist[b] + 1.0) / expected)) >= BREAK_LOG_RATIO:
                breaks += 1
    share = breaks / judged if judged else 0.0
    detected = breaks >= MIN_BREAKS and share >= MIN_BREAK_SHARE
    return DoubleJpegResult(detected, share, breaks, judged, len(blocks))
