"""The verification descriptor: a few local features per registered image, and the query's.

A registered image keeps STORED_KEYPOINTS ORB keypoints (quantised position + 32-byte
binary descriptor) in one fixed-size record of RECORD_BYTES; an upload being checked keeps
its full feature set (QUERY_FEATURES keypoints) in memory only, with its working image, so
the mirrored features can be computed when a candidate needs them. Verification
(verify.py) matches the stored keypoints against the query's and fits a similarity
transform with RANSAC, which survives scaling, crops, borders, banners and (with the
mirrored features) mirroring, while distinct photos essentially never give a consistent
geometric match.

Every function takes an image already decoded (a uint8 numpy array, RGB or grey) and never
decodes bytes itself, so it can share the analysis' one decode.

Record (RECORD_BYTES, fixed so it sits at a computed offset in a Redis string):
  version u8 | keypoint count u8 | width u8 | height u8 (the working frame, in 1/255 of its
  long edge) | STORED_KEYPOINTS x (x u8, y u8 in 1/255 of the long edge, ORB descriptor 32 B)
A record of zero bytes (or absent) means "no descriptor": a registration from before
descriptors existed, or an image too flat to describe.
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np

WORK_EDGE = 400  # pixels: long edge of the working image every feature is computed on
STORED_KEYPOINTS = 20  # keypoints kept per registered image (34 B each)
QUERY_FEATURES = 500  # keypoints of the query (memory only)
DESCRIPTOR_BYTES = 32  # ORB's 256-bit binary descriptor
POSITION_LEVELS = 255  # quantisation steps of a stored keypoint coordinate (1 byte)
RECORD_VERSION = 1
HEADER_BYTES = 4
KEYPOINT_BYTES = 2 + DESCRIPTOR_BYTES
RECORD_BYTES = HEADER_BYTES + STORED_KEYPOINTS * KEYPOINT_BYTES  # 684 bytes
GRID = 4  # cells per side of the grid the stored keypoints are spread over (crops keep some)
# Below these an image is "too flat or small" to match on content: only exact copies match.
MIN_KEYPOINTS = 12  # ORB keypoints found on the working image
MIN_SIDE = 64  # pixels, shorter side of the decoded image
MIN_LUMA_STD = 6.0  # grey levels, standard deviation of the working image
# Border trimming: a row/column belongs to a uniform border while every pixel is within
# BORDER_TOLERANCE grey levels of the corner's value; borders are only trimmed when the
# content left is at least MIN_CONTENT of the area (else the "border" is the picture).
BORDER_TOLERANCE = 10  # grey levels
MIN_CONTENT = 0.3  # fraction of the area
MIN_BORDER = 0.02  # fraction of the side's dimension: thinner uniform edges are the photo's own
# FAST threshold 10 (OpenCV's default 20 finds too few corners on soft product photos);
# edge threshold 15 px keeps keypoints close to the frame, where crops cut.
_ORB_ARGS = {"nfeatures": QUERY_FEATURES, "scaleFactor": 1.2, "nlevels": 8, "edgeThreshold": 15,
             "patchSize": 31, "fastThreshold": 10}


@functools.cache
def _orb() -> cv2.ORB:
    # ORB objects are not documented thread-safe; detectAndCompute keeps no state between
    # calls, but one per thread would cost nothing either. Created lazily (import stays cheap).
    return cv2.ORB_create(**_ORB_ARGS)


@dataclasses.dataclass(frozen=True)
class Features:
    points: np.ndarray  # float32 (n, 2), working-image pixels
    descriptors: np.ndarray  # uint8 (n, 32)
    responses: np.ndarray  # float32 (n,)
    size: tuple[int, int]  # (width, height) of the working image


@dataclasses.dataclass(frozen=True)
class Stored:
    """A decoded record: keypoints in units of the registered working image's long edge."""

    points: np.ndarray  # float32 (k, 2), in [0, 1]
    descriptors: np.ndarray  # uint8 (k, 32)
    aspect: tuple[float, float]  # (width, height) / long edge


@dataclasses.dataclass(frozen=True, eq=False)
class Probe:
    """The query side: its working image (grey), its features and those of its mirror image
    (computed with the fingerprints, so a lookup only matches), and the content box."""

    gray: np.ndarray
    features: Features
    mirrored: Features  # features of gray[:, ::-1]
    content: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the content inside uniform borders

    @property
    def bordered(self) -> bool:
        w, h = self.gray.shape[1], self.gray.shape[0]
        return self.content != (0, 0, w, h)


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """Grey working image, long edge WORK_EDGE (area-averaged down, linear up)."""
    gray = pixels if pixels.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    scale = WORK_EDGE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(gray), size, interpolation=interpolation)


def extract(gray: np.ndarray) -> Features:
    keypoints, descriptors = _orb().detectAndCompute(np.ascontiguousarray(gray), None)
    if descriptors is None or not keypoints:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_BYTES), np.uint8),
                        np.zeros(0, np.float32), (gray.shape[1], gray.shape[0]))
    return Features(np.array([k.pt for k in keypoints], np.float32), descriptors,
                    np.array([k.response for k in keypoints], np.float32), (gray.shape[1], gray.shape[0]))


def content_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) inside uniform borders (a pasted-on frame, letterboxing, a screenshot's
    plain margin), or the whole image."""
    h, w = gray.shape
    g = gray.astype(np.int16)
    x0, y0, x1, y1 = 0, 0, w, h
    for corner in (g[0, 0], g[-1, -1]):
        flat = np.abs(g - corner) <= BORDER_TOLERANCE
        rows, cols = flat.all(axis=1), flat.all(axis=0)
        while y0 < y1 and rows[y0]:
            y0 += 1
        while y1 > y0 and rows[y1 - 1]:
            y1 -= 1
        while x0 < x1 and cols[x0]:
            x0 += 1
        while x1 > x0 and cols[x1 - 1]:
            x1 -= 1
    if (x1 - x0) * (y1 - y0) < MIN_CONTENT * w * h:
        return (0, 0, w, h)
    x0, x1 = (x0 if x0 >= MIN_BORDER * w else 0), (x1 if w - x1 >= MIN_BORDER * w else w)
    y0, y1 = (y0 if y0 >= MIN_BORDER * h else 0), (y1 if h - y1 >= MIN_BORDER * h else h)
    return (x0, y0, x1, y1)


def exact_only_reason(pixels: np.ndarray, gray: np.ndarray, features: Features) -> str:
    """Why an image may only match exactly ("" when it can be matched on content)."""
    if min(pixels.shape[:2]) < MIN_SIDE:
        return f"smaller than {MIN_SIDE} px"
    if float(gray.std()) < MIN_LUMA_STD or len(features.points) < MIN_KEYPOINTS:
        return f"too flat ({len(features.points)} keypoints, grey std {float(gray.std()):.1f})"
    return ""


def probe(pixels: np.ndarray) -> Probe:
    gray = to_gray(pixels)
    return Probe(gray, extract(gray), extract(gray[:, ::-1]), content_box(gray))


def _spread(features: Features, k: int) -> np.ndarray:
    """Indices of k keypoints spread over a GRID x GRID grid (strongest of each cell first,
    round robin), so a crop or a banner leaves some of them."""
    w, h = features.size
    cx = np.minimum((features.points[:, 0] * GRID / w).astype(int), GRID - 1)
    cy = np.minimum((features.points[:, 1] * GRID / h).astype(int), GRID - 1)
    cell = cy * GRID + cx
    order = np.lexsort((-features.responses, cell))  # by cell, strongest first within a cell
    rank = np.empty(len(order), int)
    starts = np.r_[0, np.flatnonzero(np.diff(cell[order])) + 1]
    for a, b in zip(starts, np.r_[starts[1:], len(order)]):
        rank[order[a:b]] = np.arange(b - a)
    chosen = np.lexsort((-features.responses, rank))[:k]
    return chosen


def encode(features: Features) -> bytes:
    """The fixed-size record of a registered image (module docstring)."""
    w, h = features.size
    long_edge = float(max(w, h))
    chosen = _spread(features, STORED_KEYPOINTS)
    out = bytearray(RECORD_BYTES)
    out[:HEADER_BYTES] = bytes([RECORD_VERSION, len(chosen), round(w / long_edge * POSITION_LEVELS),
                                round(h / long_edge * POSITION_LEVELS)])
    pos = HEADER_BYTES
    for i in chosen.tolist():
        x, y = features.points[i] / long_edge * POSITION_LEVELS
        out[pos:pos + 2] = bytes([min(POSITION_LEVELS, round(float(x))), min(POSITION_LEVELS, round(float(y)))])
        out[pos + 2:pos + KEYPOINT_BYTES] = features.descriptors[i].tobytes()
        pos += KEYPOINT_BYTES
    return bytes(out)


def decode(record: bytes | None) -> Stored | None:
    """None for an empty/absent record or one of an unknown version."""
    if not record or len(record) < RECORD_BYTES or record[0] != RECORD_VERSION or record[1] == 0:
        return None
    n = record[1]
    rows = np.frombuffer(record, np.uint8, n * KEYPOINT_BYTES, HEADER_BYTES).reshape(n, KEYPOINT_BYTES)
    return Stored(rows[:, :2].astype(np.float32) / POSITION_LEVELS, rows[:, 2:].copy(),
                  (record[2] / POSITION_LEVELS, record[3] / POSITION_LEVELS))
