"""IJG (libjpeg) quality estimation from quantisation tables.

libjpeg, and everything built on it (Pillow, GIMP, ImageMagick, browsers, most web and
SNS pipelines), scales two fixed tables (ITU-T T.81 Annex K) by a quality 1..100. Camera
and phone firmware mostly uses tables of its own. So "the tables are exactly libjpeg's at
quality q" is a strong hint the file was last written by software, and the nearest q is a
fair quality estimate for any table.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# ITU-T T.81 Annex K tables, natural (row-major) order, as in libjpeg's jcparam.c.
STD_LUMA = (
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
)
STD_CHROMA = (
    17,
    18,
    24,
    47,
    99,
    99,
    99,
    99,
    18,
    21,
    26,
    66,
    99,
    99,
    99,
    99,
    24,
    26,
    56,
    99,
    99,
    99,
    99,
    99,
    47,
    66,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
)


def scaled_table(base: tuple[int, ...], quality: int) -> np.ndarray:
    """libjpeg's jpeg_quality_scaling + jpeg_add_quant_table with force_baseline."""
    quality = min(max(quality, 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - quality * 2  # percent
    table = (np.asarray(base, dtype=np.int64) * scale + 50) // 100
    return np.clip(table, 1, 255)


# All 100 scaled tables, computed once: shape (100, 64), row q-1 is quality q.
_LUMA_BY_Q = np.stack([scaled_table(STD_LUMA, q) for q in range(1, 101)])
_CHROMA_BY_Q = np.stack([scaled_table(STD_CHROMA, q) for q in range(1, 101)])


@dataclasses.dataclass(frozen=True)
class QualityEstimate:
    quality: int  # 1..100, 0 when there is no table
    standard: bool  # the tables are exactly libjpeg's at `quality`
    luma_error: float  # mean absolute difference to libjpeg's table at `quality`


def estimate(luma: tuple[int, ...] | None, chroma: tuple[int, ...] | None = None) -> QualityEstimate:
    if luma is None or len(luma) != 64:
        return QualityEstimate(0, False, 0.0)
    table = np.asarray(luma, dtype=np.int64)
    errors = np.abs(_LUMA_BY_Q - table).sum(axis=1)
    q_index = int(np.argmin(errors))
    standard = bool(errors[q_index] == 0)
    if standard and chroma is not None and len(chroma) == 64:
        standard = bool(np.array_equal(_CHROMA_BY_Q[q_index], np.asarray(chroma, dtype=np.int64)))
    return QualityEstimate(q_index + 1, standard, float(errors[q_index]) / 64.0)
