"""EXIF thumbnail vs main image (Kee, Johnson & Farid, "Digital image authentication from
JPEG headers", IEEE TIFS 2011; and their thumbnail work).

A camera writes the thumbnail from the same capture as the main image. An editor that
crops or retouches the main image and keeps the old EXIF block leaves a thumbnail that no
longer matches it: a different aspect ratio (crop), or different content (retouch,
composite, or EXIF transplanted from another photo). Cameras pad thumbnails to 160x120
with black bars (3:2 sensors), so bars are removed before comparing.
"""

from __future__ import annotations

import dataclasses
import io
import math

import cv2
import numpy as np
from PIL import Image

from services.common.imaging import sniff_format
from services.common.structure import check_structure
from services.metadata import jpeg

# Rows/columns at the thumbnail's edges that are this dark and this flat are padding.
BAR_MAX_MEAN = 24.0  # 8-bit grey level
BAR_MAX_STD = 6.0  # 8-bit grey levels
# Largest thumbnail we decode (EXIF limits the block to 64 KiB anyway).
MAX_THUMB_SIDE_PX = 1024  # pixels
# Content is compared on a small grey image: thumbnails are 160x120 and JPEG-blurred.
COMPARE_SIDE_PX = 32  # pixels


@dataclasses.dataclass(frozen=True)
class Thumb:
    width: int
    height: int
    content_box: tuple[int, int, int, int]  # left, top, right, bottom after removing bars
    grey: np.ndarray  # content only, float32

    @property
    def content_aspect(self) -> float:
        left, top, right, bottom = self.content_box
        return (right - left) / max(1, bottom - top)


def load(thumb: bytes) -> Thumb | None:
    """Decodes the thumbnail (a few KiB); None when it is not a readable image."""
    try:
        # A thumbnail is a file of its own: its scans are bounded like an upload's (3,000
        # scans of a 1024 px one fit in 64 KB and took ~1 s); over the limit it is unreadable.
        check_structure(thumb, sniff_format(thumb))
        grey = _opencv_y_plane(thumb)
        if grey is None:
            img = Image.open(io.BytesIO(thumb))
            if img.width > MAX_THUMB_SIDE_PX or img.height > MAX_THUMB_SIDE_PX or img.width < 8 or img.height < 8:
                return None
            if img.format == "JPEG":
                img.draft("L", img.size)  # libjpeg hands out its Y plane: no colour conversion
            grey = np.asarray(img.convert("L"), dtype=np.float32)
    except Exception:  # noqa: BLE001 - a broken thumbnail is evidence, never a crash
        return None
    h, w = grey.shape
    rows_bar = (grey.mean(axis=1) <= BAR_MAX_MEAN) & (grey.std(axis=1) <= BAR_MAX_STD)
    cols_bar = (grey.mean(axis=0) <= BAR_MAX_MEAN) & (grey.std(axis=0) <= BAR_MAX_STD)
    top = _leading(rows_bar)
    bottom = h - _leading(rows_bar[::-1])
    left = _leading(cols_bar)
    right = w - _leading(cols_bar[::-1])
    if bottom - top < h // 4 or right - left < w // 4:
        top, bottom, left, right = 0, h, 0, w  # mostly dark: a dark photo, not bars
    return Thumb(w, h, (left, top, right, bottom), grey[top:bottom, left:right])


def _opencv_y_plane(thumb: bytes) -> np.ndarray | None:
    """The Y plane of a JPEG thumbnail that OpenCV decodes exactly as Pillow would (a whole
    8-bit 1- or 3-component file, no Adobe transform; decoded.py's rule), within the size
    bounds: ~0.2 ms instead of Pillow's ~0.6 (its header walk is Python). None: use Pillow."""
    if thumb[:3] != b"\xff\xd8\xff":
        return None
    structure = jpeg.parse(thumb)
    frame = structure.frame
    if (
        structure.truncated
        or structure.eoi_offset < 0
        or structure.adobe_app14
        or frame is None
        or frame.precision != 8
        or len(frame.components) not in (1, 3)
        or not (8 <= frame.width <= MAX_THUMB_SIDE_PX and 8 <= frame.height <= MAX_THUMB_SIDE_PX)
    ):
        return None
    grey = cv2.imdecode(np.frombuffer(thumb, np.uint8), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    if grey is None or grey.shape != (frame.height, frame.width):
        return None
    return grey.astype(np.float32)


def _leading(flags: np.ndarray) -> int:
    n = 0
    for flag in flags:
        if not flag:
            break
        n += 1
    return n


def aspect_log_ratio(main_w: int, main_h: int, thumb: Thumb) -> float:
    """|ln(main aspect / thumbnail content aspect)|, accepting a 90-degree rotation."""
    main = main_w / max(1, main_h)
    t = thumb.content_aspect
    return min(abs(math.log(main / t)), abs(math.log(main * t)))


# Pillow first box-reduces by an integer factor until the image is this many times the
# target, then filters: its documented fast path, "practically indistinguishable" from
# filtering the full image at 3 (a 4 MP luma went from ~3 ms to well under 1 ms).
REDUCING_GAP = 3.0  # ratio


def _small(grey: np.ndarray) -> np.ndarray:
    img = Image.fromarray(grey.astype(np.uint8, copy=False), "L").resize(
        (COMPARE_SIDE_PX, COMPARE_SIDE_PX), Image.Resampling.BILINEAR, reducing_gap=REDUCING_GAP
    )
    arr = np.asarray(img, dtype=np.float32)
    arr = arr - arr.mean()
    norm = float(np.sqrt((arr * arr).sum()))
    return arr / norm if norm > 1e-6 else arr


def similarity(main_grey: np.ndarray, thumb: Thumb) -> float:
    """Normalised correlation of the two images at 32x32 (1: same picture), trying the
    thumbnail as stored and turned by 90 degrees either way."""
    a = _small(main_grey)
    small_thumb = _small(thumb.grey)
    best = -1.0
    for k in (0, 1, 3):
        b = np.rot90(small_thumb, k)  # turning the 32x32 equals shrinking the turned thumbnail
        if not a.any() or not b.any():
            # A flat image correlates with nothing; equal means agree.
            best = max(best, 1.0 if np.allclose(a, b) else 0.0)
            continue
        best = max(best, float((a * b).sum()))
    return best
