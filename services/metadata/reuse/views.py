"""Which perceptual hashes of an image go into the band index, and which ones a lookup probes.

A global hash (pHash 64) changes when a thief crops, mirrors, pads or covers the photo, so
one hash per image finds only scaled/re-encoded copies. Candidate retrieval therefore
indexes a few *views* of each registered image (the whole frame, a centre crop, the
middle band, four corner-anchored 93 % windows) and probes a few *variants* of the upload (as is, mirrored, inside its uniform
borders, its middle band): a cropped copy's whole frame is close to the registered centre
crop or a corner window, a copy with a banner or a corner tag has the same middle band, a mirrored copy's
mirror is close to the original, a padded copy's content is the original. The index only
proposes candidates; each is verified (verify.py) before anything is called a copy.
Chosen by measurement (bench/bench_reuse_accuracy.py, docs/registry.md).

Every function takes an already decoded image (uint8 numpy array, RGB or grey).
"""

from __future__ import annotations

import numpy as np

from services.metadata import fingerprints

# Windows as (x0, y0, x1, y1) fractions of the displayed frame.
WHOLE = (0.0, 0.0, 1.0, 1.0)
CENTRE = (0.08, 0.08, 0.92, 0.92)  # the middle 84 %: a crop of 3-13 % per side lands near it
# the middle 60 % of the height: a banner across the top or bottom, or a price tag in a
# corner (up to 20 % of the height) leaves it
MIDDLE = (0.0, 0.2, 1.0, 0.8)
# The four 93 % windows anchored at the corners: a crop that cuts 5-15 % of a dimension,
# mostly off one side, lands near one of them (the centre view covers even cuts).
CORNER = 0.93
CORNERS = (
    (0.0, 0.0, CORNER, CORNER),
    (1 - CORNER, 0.0, 1.0, CORNER),
    (0.0, 1 - CORNER, CORNER, 1.0),
    (1 - CORNER, 1 - CORNER, 1.0, 1.0),
)
# Index namespaces: each registered view has its own bands, so a variant probes only the
# views it can be a copy of (fewer candidates than every variant against every view).
# The corner windows share one namespace, indexed by their first CORNER_BANDS bands only
# (memory: 8 band records per image instead of 16; crop retrieval measured in docs/registry.md).
NS_WHOLE, NS_CENTRE, NS_MIDDLE, NS_CORNER = 0, 1, 2, 3
NAMESPACES = 4
CORNER_BANDS = 2
REGISTERED_VIEWS = (
    (NS_WHOLE, WHOLE),
    (NS_CENTRE, CENTRE),
    (NS_MIDDLE, MIDDLE),
    *((NS_CORNER, box) for box in CORNERS),
)


# Variants of `query` (by index) probed at radius 0, their exact band values only: the
# mirrored ones. A mirrored copy's mirror is as close to the original as a scaled copy, and
# a radius-1 probe costs 1 + band width bucket reads per band (16 here) where radius 0 costs
# one; on the tuning set radius 0 lost no mirrored copy (docs/registry.md).
EXACT_VARIANTS = (1, 3, 5)
# Variants (by index) hashed from the mirrored upload: a candidate only they propose is the
# only kind verified against the upload's mirror image (registry/base.py).
MIRRORED_VARIANTS = (1, 3, 5)


def bands_of(namespace: int, count: int) -> int:
    """How many of a layout's `count` bands a namespace indexes."""
    return min(count, CORNER_BANDS) if namespace == NS_CORNER else count


def window(pixels: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    h, w = pixels.shape[:2]
    x0, y0, x1, y1 = box
    top, left = round(y0 * h), round(x0 * w)
    return pixels[top : max(round(y1 * h), top + 1), left : max(round(x1 * w), left + 1)]


def _hash(pixels: np.ndarray) -> bytes:
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)
    return fingerprints.phash64(np.ascontiguousarray(rgb))


def registered(pixels: np.ndarray) -> tuple[tuple[int, bytes], ...]:
    """(namespace, hash) of every view a registration indexes, the whole frame first."""
    return tuple((ns, _hash(window(pixels, box))) for ns, box in REGISTERED_VIEWS)


def query(
    pixels: np.ndarray, content: tuple[float, float, float, float] | None
) -> tuple[tuple[bytes, tuple[int, ...]], ...]:
    """(hash, namespaces it probes) of every variant a lookup probes, the upload as is
    first. content: the box inside uniform borders, as fractions of the frame, when the
    upload has borders."""
    mirrored = pixels[:, ::-1]
    out = [
        (_hash(pixels), (NS_WHOLE, NS_CENTRE, NS_CORNER)),  # scaled/re-encoded; cropped (~ a centre or corner view)
        (_hash(mirrored), (NS_WHOLE, NS_CENTRE, NS_CORNER)),  # mirrored (and cropped)
        (_hash(window(pixels, MIDDLE)), (NS_MIDDLE,)),  # a banner or a price tag
        (_hash(window(mirrored, MIDDLE)), (NS_MIDDLE,)),  # mirrored, with a banner
    ]
    if content is not None:
        inner = window(pixels, content)
        out += [(_hash(inner), (NS_WHOLE, NS_CENTRE)), (_hash(inner[:, ::-1]), (NS_WHOLE,))]
    return tuple(out)
