"""Verification of one candidate: does the upload show the registered image (or a part of it)?

The registered image's stored keypoints are matched to the upload's (nearest ORB descriptor,
ratio test), then a similarity transform (scale, rotation, shift) is fitted with RANSAC.
A copy needs MIN_INLIERS consistent keypoints at MIN_PLACES distinct places AND geometry that says "copy": the upload's
content (inside any uniform border) comes from the registered frame (INSIDE_MIN of it), and
it keeps at least KEPT_MIN of the registered image. A photo of the same scene taken from
elsewhere, or another crop of a larger photo that only partly overlaps, fails the geometry
even when keypoints agree; it is reported as `partial` (a lower-severity finding), never as
a copy.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from services.metadata.reuse.descriptor import WORK_EDGE, Features, Probe, Stored

MAX_DESCRIPTOR_DISTANCE = 50  # bits of 256: matches of the same point in a copy are mostly under 40
RATIO = 0.85  # nearest / nearest-elsewhere descriptor distance above which a match is ambiguous
NEIGHBOURS = 4  # nearest query keypoints looked at per stored one (the nearest elsewhere is among them)
SAME_POINT_PX = 4.0  # pixels: query keypoints this close are one corner seen at two pyramid levels
REPROJECTION_PX = 6.0  # pixels of the 400 px working image (1.5 % of its long edge)
# Inlier counts per record version's keypoint slots (descriptor.KEYPOINTS: 20 in version
# 1, 16 in version 2). 7 of 16 (with MIN_PLACES) verified crops, borders, mirrored copies
# and overlays on the tuning set as 10 of 20 did, with no false match (8 of 16 lost 1-2 %
# of crops; docs/registry.md).
MIN_INLIERS = {20: 10, 16: 7}  # consistent keypoints for a geometric match
MIN_SCORE = 0.5  # inliers / stored keypoints expected inside the upload: generic corners (a box on white) score less
INSIDE_MIN = 0.85  # fraction of the upload's content that must lie inside the registered frame
# The upload's content outside the registered frame counts as inside when it is a plain
# canvas (a border the trimming left: a canvas the colour of the photo's own background, a
# product shot on white pasted on white): PLAIN_SHARE of its pixels within PLAIN_TOLERANCE
# grey levels of its median, leaving out PLAIN_MARGIN_PX along the frame's mapped outline
# (JPEG ringing, the fit's error). Photo content outside (another crop of a larger photo,
# the same scene from elsewhere) is not plain and still fails.
PLAIN_SHARE = 0.95
PLAIN_TOLERANCE = 8  # grey levels
PLAIN_MARGIN_PX = 4  # pixels of the working image
# ...and only with stronger keypoint evidence than a plain copy needs: two products shot on
# white share a white surround, and their outline corners can give MIN_INLIERS (measured:
# without this, 2 of ~20k random distinct pairs verified on the canvas rule).
CANVAS_MIN_INLIERS = {20: 15, 16: 12}  # per record slots
CANVAS_MIN_SCORE = 0.75
# Distinct places the inliers occupy (inliers within PLACE_PX of another count once: ORB
# finds one corner at several pyramid levels, and a record may store it twice). A
# similarity transform is fixed by two places, so inliers at two or three places barely
# test it: the outline of a photo patch on white with its shadow gives corners that look
# alike in every such product shot, and a record whose textured keypoints all sit there
# matched other products' outlines with 8-14 inliers at 2-3 places (every false accusation
# on products on white examined). Measured on the tuning set (docs/registry.md).
MIN_PLACES = 4
PLACE_PX = 8.0  # pixels of the working image (2 % of its long edge)
KEPT_MIN = 0.4  # fraction of the registered image the upload must keep
SCALE_RANGE = (0.2, 5.0)  # plausible working-frame scale factors of a copy
# degrees: a copy is upright (retrieval probes no rotated variants either); the corners of a
# box on white fit each other turned by 90 degrees, which this rules out.
MAX_ROTATION = 10.0
RANSAC_ITERATIONS = 500
CROPPED_BELOW = 0.95  # kept fraction under which a copy is called cropped
OVERLAID_BELOW = 0.6  # inlier share of the visible stored keypoints under which part is covered


@dataclasses.dataclass(frozen=True)
class Verification:
    matched: bool  # a verified copy
    partial: bool  # keypoints agree but the geometry is not a copy (same scene, overlapping crop)
    inliers: int
    score: float  # inliers / stored keypoints expected inside the upload's content
    kept: float  # fraction of the registered image inside the upload
    inside: float  # fraction of the upload's content that comes from the registered image
    kinds: tuple[str, ...]  # cropped, mirrored, bordered, overlaid, rotated; () = scaled/re-encoded only


NO_MATCH = Verification(False, False, 0, 0.0, 0.0, 0.0, ())


def _area(poly: np.ndarray) -> float:
    return float(abs(cv2.contourArea(poly.astype(np.float32))))


def _plain_outside(gray: np.ndarray, mapped: np.ndarray) -> bool:
    """Whether the part of `gray` outside the polygon `mapped` is a plain canvas."""
    frame = np.zeros(gray.shape, np.uint8)
    cv2.fillConvexPoly(frame, np.round(mapped).astype(np.int32), 1)
    near = cv2.dilate(frame, np.ones((2 * PLAIN_MARGIN_PX + 1,) * 2, np.uint8))
    outside = gray[near == 0]
    if not len(outside):
        return True
    median = float(np.median(outside))
    return float((np.abs(outside.astype(np.float32) - median) <= PLAIN_TOLERANCE).mean()) >= PLAIN_SHARE


def _places(points: np.ndarray) -> int:
    """How many distinct places `points` (working-image pixels) occupy: a point within
    PLACE_PX of an earlier kept one counts with it."""
    kept: list[np.ndarray] = []
    for p in points:
        if all(float(np.hypot(*(p - q))) > PLACE_PX for q in kept):
            kept.append(p)
    return len(kept)


def _candidate_matches(stored: list[Stored], query: Features) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per stored record, the (stored index, query index) pairs that pass the distance and
    ratio tests: ONE batched nearest-neighbour search over every record's keypoints."""
    counts = [len(s.descriptors) for s in stored]
    if len(query.descriptors) < 2 or not sum(counts):
        return [(np.zeros(0, int), np.zeros(0, int)) for _ in stored]
    every = np.concatenate([s.descriptors for s in stored])
    k = min(NEIGHBOURS, len(query.descriptors))
    dist, nearest = cv2.batchDistance(every, query.descriptors, dtype=cv2.CV_32S, normType=cv2.NORM_HAMMING, K=k)
    # The ratio test compares the nearest with the nearest keypoint ELSEWHERE: ORB finds one
    # corner at several pyramid levels with near-identical descriptors, and such a twin is
    # no ambiguity (a plain second-nearest rejected most matches of scaled-down copies).
    where = query.points[nearest]  # (rows, k, 2)
    apart = np.linalg.norm(where - where[:, :1], axis=2) > SAME_POINT_PX
    apart[:, 0] = False
    has_other = apart.any(axis=1)
    second = np.where(has_other, dist[np.arange(len(dist)), apart.argmax(axis=1)], np.iinfo(np.int32).max)
    good = (dist[:, 0] <= MAX_DESCRIPTOR_DISTANCE) & (dist[:, 0] <= RATIO * second)
    out, start = [], 0
    for n in counts:
        rows = np.flatnonzero(good[start : start + n])
        out.append((rows, nearest[start + rows, 0]))
        start += n
    return out


def _fit(
    stored: Stored, query: Features, pairs: tuple[np.ndarray, np.ndarray], probe: Probe, mirrored: bool
) -> Verification:
    rows, cols = pairs
    min_inliers = MIN_INLIERS[stored.slots]
    if len(rows) < min_inliers:
        return NO_MATCH
    src_a = (stored.points[rows] * WORK_EDGE).astype(np.float32)
    dst_a = query.points[cols].astype(np.float32)
    matrix, mask = cv2.estimateAffinePartial2D(
        src_a,
        dst_a,
        method=cv2.RANSAC,
        ransacReprojThreshold=REPROJECTION_PX,
        maxIters=RANSAC_ITERATIONS,
        confidence=0.995,
    )
    if matrix is None:
        return NO_MATCH
    inliers = int(mask.sum())
    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    rotation = abs(math.degrees(math.atan2(matrix[1, 0], matrix[0, 0])))
    if inliers < min_inliers or not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1] or rotation > MAX_ROTATION:
        return NO_MATCH
    w, h = stored.aspect[0] * WORK_EDGE, stored.aspect[1] * WORK_EDGE
    frame = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    mapped = (frame @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
    x0, y0, x1, y1 = probe.content  # the whole working image (borders are trimmed off it)
    content = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    overlap, _ = cv2.intersectConvexConvex(mapped, content)
    kept = overlap / max(_area(mapped), 1e-6)
    inside = overlap / max(_area(content), 1e-6)
    projected = stored.points * WORK_EDGE @ matrix[:, :2].T + matrix[:, 2]
    visible = int(
        ((projected[:, 0] >= x0) & (projected[:, 0] < x1) & (projected[:, 1] >= y0) & (projected[:, 1] < y1)).sum()
    )
    score = inliers / max(visible, inliers, 1)
    on_canvas = False
    if (
        kept >= KEPT_MIN
        and inside < INSIDE_MIN
        and inliers >= CANVAS_MIN_INLIERS[stored.slots]
        and score >= CANVAS_MIN_SCORE
        and _plain_outside(probe.gray, mapped)
    ):
        inside, on_canvas = 1.0, True  # the rest is a plain canvas around the registered picture
    if score < MIN_SCORE:
        return NO_MATCH
    if _places(src_a[mask.ravel() > 0]) < MIN_PLACES:
        return NO_MATCH  # a few corners agreeing, each counted at several scales: no evidence of a copy
    matched = inside >= INSIDE_MIN and kept >= KEPT_MIN
    kinds = []
    if matched:
        if kept < CROPPED_BELOW:
            kinds.append("cropped")
        if mirrored:
            kinds.append("mirrored")
        if probe.border_sides >= 2 or on_canvas:  # pasted on a canvas
            kinds.append("bordered")
        if score < OVERLAID_BELOW or probe.border_sides == 1:  # covered in part; a plain strip on one side
            kinds.append("overlaid")
        if rotation > 2:
            kinds.append("rotated")
    return Verification(
        matched, not matched, inliers, round(score, 3), round(float(kept), 3), round(float(inside), 3), tuple(kinds)
    )


def _better(a: Verification, b: Verification) -> Verification:
    return max((a, b), key=lambda v: (v.matched, v.partial, v.inliers))


def verify_all(stored: list[Stored], probe: Probe, mirrored: list[bool] | None = None) -> list[Verification]:
    """Each stored record against the upload as is, and against its mirror image where
    `mirrored` says so (every record when None; the better fit wins). The mirror image's
    keypoints cost an ORB pass, made only when some record needs them: the registry asks
    for it only for candidates a mirrored variant proposed. RANSAC only runs for records
    with at least MIN_INLIERS descriptor matches, which a distinct photo almost never has,
    so checking hundreds of candidates costs about a millisecond."""
    flags = [True] * len(stored) if mirrored is None else mirrored
    out = [_fit(s, probe.features, d, probe, False) for s, d in zip(stored, _candidate_matches(stored, probe.features))]
    which = [i for i, flag in enumerate(flags) if flag]
    if which:
        flipped = _candidate_matches([stored[i] for i in which], probe.mirrored)
        for i, f in zip(which, flipped):
            out[i] = _better(out[i], _fit(stored[i], probe.mirrored, f, probe, True))
    return out


def verify(stored: Stored, probe: Probe) -> Verification:
    return verify_all([stored], probe)[0]
