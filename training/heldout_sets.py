"""Evaluation sets, built by recipes written apart from the training generator.

How they differ from training/canvas.py (so the report does not measure the forger the
model was tuned to):
- cameras: hosts and donors come only from TEST makes (camera_photos.TEST_MAKES), never
  seen in training or calibration;
- masks: random-walk blobs (thresholded smoothed noise) and star polygons, where training
  uses ellipses, convex-ish polygons, rectangles and BSDS segments;
- donors are scaled with Lanczos or area kernels by 0.7-1.25 and blended hard, with a
  Gaussian-feathered alpha, or with Poisson cloning (cv2.seamlessClone), which training
  never does;
- the final save imitates an editor's export: Pillow JPEG with optimize and progressive
  at q85-95, or OpenCV at q88-97, on a crop whose offset is not on the 8x8 grid;
- every composite has a twin: the same host crop saved the same way without the paste,
  so "re-saved" is never what separates the classes.

Sets (each a list of (bytes, label) with label 1 = composite):
- camera: cross-camera composites of test makes, native resolution (crops <= 2048 px);
- bsds: the paper's way inside one pipeline: a segment of one BSDS val photo scaled and
  pasted into another, re-encoded at q70-95 (cv2); twins re-encoded alike;
- originals: the untouched files of the test makes (label 0), for false-alarm rates.
Conditions: asis, jpeg75 (re-encoded at q75), 1280px (long edge downscaled to 1280, q90).
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from training import bsds, camera_photos

MAX_CROP = 2048  # px: a side of the camera composites' host crop
CONDITIONS = ("asis", "jpeg75", "1280px")


def _blob_mask(h: int, w: int, rng: np.random.Generator, area: float) -> np.ndarray:
    coarse = rng.random((max(4, h // 32), max(4, w // 32))).astype(np.float32)
    noise = cv2.GaussianBlur(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), (0, 0), max(h, w) / 40)
    # A window so the blob sits somewhere in the image, then the threshold that gives area.
    cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.sqrt(((yy - cy) / h) ** 2 + ((xx - cx) / w) ** 2)
    field = noise - 2.0 * r
    thr = np.quantile(field, 1.0 - area)
    return (field > thr).astype(np.float32)


def _star_mask(h: int, w: int, rng: np.random.Generator, area: float) -> np.ndarray:
    n = int(rng.integers(5, 9))
    radius = np.sqrt(area * h * w / np.pi) * 1.3
    cy, cx = (
        rng.uniform(radius, h - radius) if h > 2 * radius else h / 2,
        (rng.uniform(radius, w - radius) if w > 2 * radius else w / 2),
    )
    ang = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False) + rng.uniform(0, np.pi)
    rad = np.where(np.arange(2 * n) % 2 == 0, radius, radius * rng.uniform(0.35, 0.6))
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1).astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [pts], 1)
    return mask.astype(np.float32)


def _editor_save(image: np.ndarray, rng: np.random.Generator) -> bytes:
    if rng.random() < 0.5:
        buf = io.BytesIO()
        q = int(rng.choice([85, 88, 90, 92, 95]))
        Image.fromarray(image).save(buf, "JPEG", quality=q, optimize=True, progressive=bool(rng.random() < 0.5))
        return buf.getvalue()
    q = int(rng.integers(88, 98))
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    assert ok
    return enc.tobytes()


def _paste(host: np.ndarray, donor: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mode = rng.choice(["hard", "feather", "poisson"], p=[0.5, 0.25, 0.25])
    if mode == "poisson":
        ys, xs = np.nonzero(mask)
        if len(ys) and ys.min() > 1 and xs.min() > 1 and ys.max() < host.shape[0] - 2 and xs.max() < host.shape[1] - 2:
            centre = (int((xs.min() + xs.max() + 1) // 2), int((ys.min() + ys.max() + 1) // 2))
            m8 = (mask * 255).astype(np.uint8)
            try:
                out = cv2.seamlessClone(
                    np.ascontiguousarray(donor[..., ::-1]),
                    np.ascontiguousarray(host[..., ::-1]),
                    m8,
                    centre,
                    cv2.NORMAL_CLONE,
                )
                return np.ascontiguousarray(out[..., ::-1])
            except cv2.error:
                pass
        mode = "hard"
    alpha = mask if mode == "hard" else cv2.GaussianBlur(mask, (0, 0), float(rng.uniform(1.5, 3.0)))
    return (host * (1 - alpha[..., None]) + donor * alpha[..., None]).round().clip(0, 255).astype(np.uint8)


def camera_composites(n_pairs: int, seed: int = 5151) -> list[tuple[bytes, int]]:
    photos = camera_photos.photos("test")
    rng = np.random.default_rng(seed)
    out: list[tuple[bytes, int]] = []
    for _ in range(n_pairs):
        a = photos[int(rng.integers(len(photos)))]
        others = [p for p in photos if p.make != a.make]
        b = others[int(rng.integers(len(others)))]
        host_full = camera_photos.load_rgb(a.path)
        h0, w0 = host_full.shape[:2]
        ch, cw = min(h0, MAX_CROP), min(w0, MAX_CROP)
        y, x = int(rng.integers(0, h0 - ch + 1)), int(rng.integers(0, w0 - cw + 1))
        host = np.ascontiguousarray(host_full[y : y + ch, x : x + cw])
        donor_full = camera_photos.load_rgb(b.path)
        f = float(rng.uniform(0.7, 1.25))
        kernel = cv2.INTER_LANCZOS4 if rng.random() < 0.5 else cv2.INTER_AREA
        donor_full = cv2.resize(donor_full, None, fx=f, fy=f, interpolation=kernel)
        dh, dw = donor_full.shape[:2]
        sy, sx = int(rng.integers(0, max(1, dh - ch + 1))), int(rng.integers(0, max(1, dw - cw + 1)))
        part = donor_full[sy : sy + ch, sx : sx + cw]
        ph, pw = part.shape[:2]
        # The donor's part may be smaller than the host (a small photo): the mask lives
        # inside it, placed anywhere in the host.
        oy, ox = int(rng.integers(0, ch - ph + 1)), int(rng.integers(0, cw - pw + 1))
        donor = host.copy()
        donor[oy : oy + ph, ox : ox + pw] = part
        area = float(rng.uniform(0.04, 0.3)) * min(1.0, 4.0 * ph * pw / (ch * cw))
        sub = _blob_mask(ph, pw, rng, area) if rng.random() < 0.5 else _star_mask(ph, pw, rng, area)
        mask = np.zeros((ch, cw), np.float32)
        mask[oy : oy + ph, ox : ox + pw] = sub
        composite = _paste(host, donor, mask, rng)
        save_seed = int(rng.integers(1 << 31))
        out.append((_editor_save(composite, np.random.default_rng(save_seed)), 1))
        out.append((_editor_save(host, np.random.default_rng(save_seed)), 0))
    return out


def bsds_composites(n_pairs: int, seed: int = 6262) -> list[tuple[bytes, int]]:
    photos = bsds.list_photos("val")
    rng = np.random.default_rng(seed)
    out: list[tuple[bytes, int]] = []
    for _ in range(n_pairs):
        i, j = rng.choice(len(photos), 2, replace=False)
        src, labels = bsds._load(photos[i].image_path, photos[i].segments_path)
        dst, _ = bsds._load(photos[j].image_path, photos[j].segments_path)
        ids, counts = np.unique(labels, return_counts=True)
        ok = ids[(counts > 0.03 * labels.size) & (counts < 0.4 * labels.size)]
        seg_id = rng.choice(ok) if len(ok) else ids[np.argmax(counts)]
        seg = (labels == seg_id).astype(np.uint8)
        ys, xs = np.nonzero(seg)
        piece = src[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        pmask = seg[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        f = float(rng.uniform(0.6, 1.2))
        f = min(f, 0.95 * dst.shape[0] / piece.shape[0], 0.95 * dst.shape[1] / piece.shape[1])
        piece = cv2.resize(piece, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR)
        pmask = cv2.resize(pmask, (piece.shape[1], piece.shape[0]), interpolation=cv2.INTER_NEAREST)
        py = int(rng.integers(0, dst.shape[0] - piece.shape[0] + 1))
        px = int(rng.integers(0, dst.shape[1] - piece.shape[1] + 1))
        comp = dst.copy()
        region = comp[py : py + piece.shape[0], px : px + piece.shape[1]]
        region[pmask > 0] = piece[pmask > 0]
        q = int(rng.integers(70, 96))
        for img, label in ((comp, 1), (dst, 0)):
            _ok, enc = cv2.imencode(
                ".jpg", cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q]
            )
            out.append((enc.tobytes(), label))
    return out


def genuine_originals() -> list[tuple[bytes, int]]:
    return [(p.path.read_bytes(), 0) for p in camera_photos.photos("test")]


def apply_condition(data: bytes, condition: str) -> bytes:
    if condition == "asis":
        return data
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    if condition == "1280px":
        h, w = rgb.shape[:2]
        s = 1280 / max(h, w)
        if s < 1:
            rgb = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        quality = 90
    elif condition == "jpeg75":
        quality = 75
    else:
        raise ValueError(f"unknown condition {condition!r}; expected one of {CONDITIONS}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()
