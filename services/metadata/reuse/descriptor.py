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

Record (fixed size per version, so it sits at a computed offset in a Redis string):
  version u8 | keypoint count u8 | width u8 | height u8 (the working frame, in 1/255 of its
  long edge) | KEYPOINTS[version] x (x u8, y u8 in 1/255 of the long edge, ORB descriptor 32 B)
Version 2 (written now) holds 16 keypoints, 548 B; version 1 (written before) 20, 684 B:
both decode and verify, and the Redis backends keep each version under keys of its own.
A record of zero bytes (or absent) means "no descriptor": a registration from before
descriptors existed, or an image too flat to describe.
"""

from __future__ import annotations

import dataclasses
import functools
import threading

import cv2
import numpy as np

WORK_EDGE = 400  # pixels: long edge of the working image every feature is computed on
STORED_KEYPOINTS = 16  # keypoints kept per registered image (34 B each; version 1 kept 20)
QUERY_FEATURES = 500  # keypoints of the query (memory only)
DESCRIPTOR_BYTES = 32  # ORB's 256-bit binary descriptor
POSITION_LEVELS = 255  # quantisation steps of a stored keypoint coordinate (1 byte)
RECORD_VERSION = 2  # the version registrations write
KEYPOINTS = {1: 20, 2: STORED_KEYPOINTS}  # keypoint slots of a record, per version
HEADER_BYTES = 4
KEYPOINT_BYTES = 2 + DESCRIPTOR_BYTES


def record_bytes(version: int) -> int:
    return HEADER_BYTES + KEYPOINTS[version] * KEYPOINT_BYTES


RECORD_BYTES = record_bytes(RECORD_VERSION)  # 548 bytes
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
# Stable keypoints: found again in the working image scaled by 0.6 and blurred (sigma ~0.8
# px), within 3 px and 40 descriptor bits: what survives an SNS resize and re-encode.
STABILITY_SCALE = 0.6
STABLE_PX = 3.0  # pixels of the working image
STABLE_DISTANCE = 40  # bits of 256
# Textured keypoints: at most 25 % of the 31 px square around it (ORB's patch) is flat, i.e.
# has a 5x5 standard deviation under 2 grey levels (JPEG noise on a white background stays under it).
FLAT_STD = 2.0  # grey levels
FLAT_SHARE = 0.25
PATCH_PX = 31  # pixels
ORB_SCALE_FACTOR = 1.2  # between pyramid levels (OpenCV's default)
ORB_LEVELS = 8  # pyramid levels (OpenCV's default): 1 to 1/3.6 of the working size
ORB_EDGE_PX = 15  # pixels left out at the frame (default 31): keeps keypoints close to it, where crops cut
ORB_PATCH_PX = 31  # pixels, the descriptor's patch (OpenCV's default)
ORB_FAST_THRESHOLD = 10  # grey levels (default 20 finds too few corners on soft product photos)


_local = threading.local()


def _orb() -> cv2.ORB:
    """One ORB detector per thread: OpenCV does not document detectAndCompute on a shared
    instance as thread-safe, and the analysis runs uploads on several threads."""
    orb = getattr(_local, "orb", None)
    if orb is None:
        orb = _local.orb = cv2.ORB.create(
            nfeatures=QUERY_FEATURES,
            scaleFactor=ORB_SCALE_FACTOR,
            nlevels=ORB_LEVELS,
            edgeThreshold=ORB_EDGE_PX,
            patchSize=ORB_PATCH_PX,
            fastThreshold=ORB_FAST_THRESHOLD,
        )
    return orb


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
    slots: int = STORED_KEYPOINTS  # keypoints its record version holds (verification scales its counts by it)


@dataclasses.dataclass(frozen=True, eq=False)
class Probe:
    """The query side: its working image (grey; for an upload with uniform borders, the
    content inside them, brought to the working size, so the picture is at the scale it was
    registered at), its features and those of its mirror image."""

    gray: np.ndarray
    features: Features
    border_sides: int  # sides with a uniform border (trimmed off in `gray`): 1 is a strip, a banner

    @functools.cached_property
    def mirrored(self) -> Features:
        """Features of gray[:, ::-1]: computed when a candidate is verified, not for every upload."""
        return extract(self.gray[:, ::-1])

    @property
    def bordered(self) -> bool:
        return self.border_sides > 0

    @property
    def content(self) -> tuple[int, int, int, int]:
        return (0, 0, self.gray.shape[1], self.gray.shape[0])


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
        return Features(
            np.zeros((0, 2), np.float32),
            np.zeros((0, DESCRIPTOR_BYTES), np.uint8),
            np.zeros(0, np.float32),
            (gray.shape[1], gray.shape[0]),
        )
    return Features(
        np.array([k.pt for k in keypoints], np.float32),
        descriptors,
        np.array([k.response for k in keypoints], np.float32),
        (gray.shape[1], gray.shape[0]),
    )


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
    box = content_box(gray)
    h, w = gray.shape
    sides = int(box[0] > 0) + int(box[1] > 0) + int(box[2] < w) + int(box[3] < h)
    if sides:
        ph, pw = pixels.shape[:2]
        x0, y0, x1, y1 = box
        inner = pixels[round(y0 * ph / h) : round(y1 * ph / h), round(x0 * pw / w) : round(x1 * pw / w)]
        gray = to_gray(inner)
    return Probe(gray, extract(gray), sides)


def border_box(pixels: np.ndarray) -> tuple[float, float, float, float] | None:
    """The content inside uniform borders as fractions of the frame, or None (no borders)."""
    gray = to_gray(pixels)
    h, w = gray.shape
    box = content_box(gray)
    if box == (0, 0, w, h):
        return None
    return (box[0] / w, box[1] / h, box[2] / w, box[3] / h)


def stable(gray: np.ndarray, features: Features) -> np.ndarray:
    """Per keypoint, whether it survives what a re-upload does: found again, with a close
    descriptor at the same place, in a copy scaled to STABILITY_SCALE and blurred. Storing
    stable keypoints first is what lets 20 of them be found in a scaled-down, padded copy."""
    if not len(features.points):
        return np.zeros(0, bool)
    h, w = gray.shape
    small = cv2.resize(
        gray, (max(1, round(w * STABILITY_SCALE)), max(1, round(h * STABILITY_SCALE))), interpolation=cv2.INTER_AREA
    )
    other = extract(cv2.GaussianBlur(small, (3, 3), 0))
    if not len(other.points):
        return np.zeros(len(features.points), bool)
    dist, nearest = cv2.batchDistance(
        features.descriptors, other.descriptors, dtype=cv2.CV_32S, normType=cv2.NORM_HAMMING, K=1
    )
    moved = np.linalg.norm(other.points[nearest[:, 0]] / STABILITY_SCALE - features.points, axis=1)
    return (dist[:, 0] <= STABLE_DISTANCE) & (moved <= STABLE_PX)


def textured(gray: np.ndarray, features: Features) -> np.ndarray:
    """Per keypoint, whether its neighbourhood is texture rather than the edge of a plain
    area: at most FLAT_SHARE of the PATCH_PX square around it is flat (local std under
    FLAT_STD). The corner of a box or a photo on a white background looks the same in every
    such picture; a record of those would verify one product shot against another."""
    if not len(features.points):
        return np.zeros(0, bool)
    g = gray.astype(np.float32)
    mean = cv2.blur(g, (5, 5))
    std = np.sqrt(np.maximum(cv2.blur(g * g, (5, 5)) - mean * mean, 0))
    share = cv2.blur((std < FLAT_STD).astype(np.float32), (PATCH_PX, PATCH_PX))
    x = np.clip(features.points[:, 0].round().astype(int), 0, gray.shape[1] - 1)
    y = np.clip(features.points[:, 1].round().astype(int), 0, gray.shape[0] - 1)
    return share[y, x] <= FLAT_SHARE


def _spread(features: Features, k: int, stable_: np.ndarray) -> np.ndarray:
    """Indices of k keypoints spread over a GRID x GRID grid (stable ones first, then the
    strongest of each cell, round robin), so a crop or a banner leaves some of them."""
    w, h = features.size
    cx = np.minimum((features.points[:, 0] * GRID / w).astype(int), GRID - 1)
    cy = np.minimum((features.points[:, 1] * GRID / h).astype(int), GRID - 1)
    cell = cy * GRID + cx
    strength = features.responses + stable_ * 1e6  # stable keypoints outrank every unstable one
    order = np.lexsort((-strength, cell))  # by cell, strongest first within a cell
    rank = np.empty(len(order), int)
    starts = np.r_[0, np.flatnonzero(np.diff(cell[order])) + 1]
    for a, b in zip(starts, np.r_[starts[1:], len(order)]):
        rank[order[a:b]] = np.arange(b - a)
    return np.lexsort((-strength, rank, ~stable_))[:k]


def encode(
    features: Features,
    stable_: np.ndarray | None = None,
    textured_: np.ndarray | None = None,
    version: int = RECORD_VERSION,
) -> bytes:
    """The fixed-size record of a registered image (module docstring). stable_: per
    keypoint, whether it is stable (see `stable`), stored first; textured_: whether it is
    texture (see `textured`); the others are never stored. version: the record format
    (an older one only for tests and measurements)."""
    w, h = features.size
    long_edge = float(max(w, h))
    if textured_ is not None:
        keep = np.flatnonzero(textured_)
        features = Features(features.points[keep], features.descriptors[keep], features.responses[keep], features.size)
        stable_ = stable_[keep] if stable_ is not None else None
    chosen = _spread(
        features, KEYPOINTS[version], stable_ if stable_ is not None else np.zeros(len(features.points), bool)
    )
    out = bytearray(record_bytes(version))
    out[:HEADER_BYTES] = bytes(
        [version, len(chosen), round(w / long_edge * POSITION_LEVELS), round(h / long_edge * POSITION_LEVELS)]
    )
    pos = HEADER_BYTES
    for i in chosen.tolist():
        x, y = features.points[i] / long_edge * POSITION_LEVELS
        out[pos : pos + 2] = bytes([min(POSITION_LEVELS, round(float(x))), min(POSITION_LEVELS, round(float(y)))])
        out[pos + 2 : pos + KEYPOINT_BYTES] = features.descriptors[i].tobytes()
        pos += KEYPOINT_BYTES
    return bytes(out)


def decode(record: bytes | None) -> Stored | None:
    """None for an empty/absent record (no descriptor stored) or one of an unknown version; a
    record with no keypoints (nothing textured to describe) decodes to an empty Stored, which
    never verifies. Every version in KEYPOINTS decodes."""
    if not record or record[0] not in KEYPOINTS or len(record) < record_bytes(record[0]):
        return None
    n = min(record[1], KEYPOINTS[record[0]])
    rows = np.frombuffer(record, np.uint8, n * KEYPOINT_BYTES, HEADER_BYTES).reshape(n, KEYPOINT_BYTES)
    return Stored(
        rows[:, :2].astype(np.float32) / POSITION_LEVELS,
        rows[:, 2:].copy(),
        (record[2] / POSITION_LEVELS, record[3] / POSITION_LEVELS),
        KEYPOINTS[record[0]],
    )
