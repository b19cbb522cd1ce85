"""Compositing methods: how a tampered photo is made, with the exact mask of changed pixels.

Two families, kept apart on purpose:
- TRAIN methods (the paper's segment pasting and its variants: feathered edges, colour
  matching, scaling, copy-move within one photo) make the training and validation data.
- HELD-OUT methods (rectangular / elliptical splices, Poisson "seamless" cloning via
  cv2.seamlessClone, seamless copy-move) are never seen in training; the second test set
  is made with them, so the test measures generalisation to a different forger.

Every function returns (image, mask): the composite as RGB uint8 and a bool mask that is
True exactly where the composite differs from the destination photo by construction.
"""

from __future__ import annotations

import cv2
import numpy as np

# Segments covering 1-40 % of the source photo: smaller ones are a few pixels of texture,
# larger ones replace the whole background (not a composite any more).
MIN_SEGMENT_FRACTION = 0.01  # fraction of the source photo's pixels
MAX_SEGMENT_FRACTION = 0.40  # fraction of the source photo's pixels
SCALE_RANGE = (0.6, 1.4)  # factor applied to a pasted segment when "scale" is on
FEATHER_SIGMA_RANGE = (0.8, 3.0)  # pixels: Gaussian sigma of a feathered edge
ALPHA_FLOOR = 1.0 / 255.0  # blending weights below one 8-bit step change no pixel: cut to 0
COLOR_MATCH_STRENGTH = (0.5, 1.0)  # fraction of the Reinhard colour transfer applied
MIN_COPY_MOVE_SHIFT = 24  # pixels: a copy-move onto (almost) itself changes nothing visible
SHAPE_AREA_RANGE = (0.03, 0.25)  # fraction of the destination: held-out rectangles/ellipses


def _pick_segment(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ids, counts = np.unique(labels, return_counts=True)
    fractions = counts / labels.size
    ok = ids[(fractions >= MIN_SEGMENT_FRACTION) & (fractions <= MAX_SEGMENT_FRACTION)]
    if ok.size == 0:  # every segment too big or too small: take the one nearest the range
        ok = ids[[int(np.argmin(np.abs(fractions - MAX_SEGMENT_FRACTION / 2)))]]
    return labels == rng.choice(ok)


CROP_MARGIN = 8  # pixels of the source kept around a segment, room for a feathered edge


def _crop_to_mask(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(mask)
    y0, x0 = max(0, ys.min() - CROP_MARGIN), max(0, xs.min() - CROP_MARGIN)
    y1, x1 = min(mask.shape[0], ys.max() + 1 + CROP_MARGIN), min(mask.shape[1], xs.max() + 1 + CROP_MARGIN)
    return image[y0:y1, x0:x1], mask[y0:y1, x0:x1]


def _fit(patch: np.ndarray, mask: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Crops a patch that is larger than the destination (after scaling) to fit inside it."""
    return patch[:height, :width], mask[:height, :width]


def _color_match(patch: np.ndarray, mask: np.ndarray, region: np.ndarray, strength: float) -> np.ndarray:
    """Reinhard colour transfer in Lab: the segment takes the destination region's statistics."""
    src = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB).astype(np.float32)
    dst = cv2.cvtColor(region, cv2.COLOR_RGB2LAB).astype(np.float32)
    inside = src[mask]
    mu_s, sd_s = inside.mean(0), inside.std(0) + 1e-3
    mu_d, sd_d = dst.reshape(-1, 3).mean(0), dst.reshape(-1, 3).std(0) + 1e-3
    matched = (src - mu_s) / sd_s * sd_d + mu_d
    out = src + strength * (matched - src)
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _blend(dst: np.ndarray, patch: np.ndarray, mask: np.ndarray, top: int, left: int,
           feather_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    alpha = mask.astype(np.float32)
    if feather_sigma > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), feather_sigma)
        # A feathered edge also spreads outward, over the source pixels kept around the
        # segment (CROP_MARGIN); weights too small to change a pixel are cut to exactly 0.
        alpha[alpha < ALPHA_FLOOR] = 0.0
    out = dst.copy()
    region = out[top:top + h, left:left + w].astype(np.float32)
    a = alpha[..., None]
    mixed = np.rint(a * patch.astype(np.float32) + (1 - a) * region).astype(np.uint8)
    out[top:top + h, left:left + w] = mixed
    full = np.zeros(dst.shape[:2], bool)
    full[top:top + h, left:left + w] = alpha > 0
    return out, full


def paste_segment(dst: np.ndarray, src: np.ndarray, src_labels: np.ndarray, rng: np.random.Generator, *,
                  feather: bool = False, color_match: bool = False, scale: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The paper's composite: one human-segmented object of `src` pasted into `dst`."""
    seg = _pick_segment(src_labels, rng)
    # The patch is the segment's bounding box of the SOURCE photo, so a feathered edge blends
    # in the source's own surroundings of the object, as a careless lasso cut would.
    patch, mask = _crop_to_mask(src, seg)
    if scale:
        s = rng.uniform(*SCALE_RANGE)
        size = (max(4, round(patch.shape[1] * s)), max(4, round(patch.shape[0] * s)))
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    patch, mask = _fit(patch, mask, *dst.shape[:2])
    if not mask.any():  # cropped away entirely: fall back to the unscaled segment's corner
        mask[: min(4, mask.shape[0]), : min(4, mask.shape[1])] = True
    h, w = mask.shape
    top = int(rng.integers(0, dst.shape[0] - h + 1))
    left = int(rng.integers(0, dst.shape[1] - w + 1))
    if color_match:
        region = dst[top:top + h, left:left + w]
        patch = _color_match(patch, mask, region, rng.uniform(*COLOR_MATCH_STRENGTH))
    sigma = rng.uniform(*FEATHER_SIGMA_RANGE) if feather else 0.0
    return _blend(dst, patch, mask, top, left, sigma)


def copy_move(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *,
              feather: bool = False, scale: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One segment of the photo copied to another place in the same photo."""
    seg = _pick_segment(labels, rng)
    ys, xs = np.nonzero(seg)
    patch, mask = _crop_to_mask(image, seg)
    if scale:
        s = rng.uniform(0.8, 1.2)  # copy-moves are rarely rescaled much: they must still fit
        size = (max(4, round(patch.shape[1] * s)), max(4, round(patch.shape[0] * s)))
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    patch, mask = _fit(patch, mask, *image.shape[:2])
    if not mask.any():
        mask[: min(4, mask.shape[0]), : min(4, mask.shape[1])] = True
    h, w = mask.shape
    for _ in range(8):  # a few tries for a position that really moves the segment
        top = int(rng.integers(0, image.shape[0] - h + 1))
        left = int(rng.integers(0, image.shape[1] - w + 1))
        if abs(top - ys.min()) + abs(left - xs.min()) >= MIN_COPY_MOVE_SHIFT:
            break
    sigma = rng.uniform(*FEATHER_SIGMA_RANGE) if feather else 0.0
    out, full = _blend(image, patch, mask, top, left, sigma)
    # Pixels the copy left unchanged (same value as before) are not tampered.
    return out, full & (out != image).any(-1)


TRAIN_METHODS = ("paste", "paste_feather", "paste_color", "paste_scaled", "paste_all", "copy_move")


def compose_train(method: str, dst: np.ndarray, dst_labels: np.ndarray, src: np.ndarray,
                  src_labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if method == "paste":
        out, mask = paste_segment(dst, src, src_labels, rng)
    elif method == "paste_feather":
        out, mask = paste_segment(dst, src, src_labels, rng, feather=True)
    elif method == "paste_color":
        out, mask = paste_segment(dst, src, src_labels, rng, color_match=True)
    elif method == "paste_scaled":
        out, mask = paste_segment(dst, src, src_labels, rng, scale=True)
    elif method == "paste_all":
        out, mask = paste_segment(dst, src, src_labels, rng, feather=True, color_match=True, scale=True)
    elif method == "copy_move":
        out, mask = copy_move(dst, dst_labels, rng, feather=bool(rng.random() < 0.5), scale=bool(rng.random() < 0.5))
    else:
        raise ValueError(f"unknown train compositing method {method!r}")
    # The exact mask: a pixel counts as tampered only if it really changed.
    return out, mask & (out != dst).any(-1)


# ---- held-out methods: the second test set only ---------------------------------------------

def _shape_mask(height: int, width: int, shape: str, rng: np.random.Generator) -> np.ndarray:
    area = rng.uniform(*SHAPE_AREA_RANGE) * height * width
    aspect = rng.uniform(0.5, 2.0)
    h = int(np.clip(np.sqrt(area / aspect), 8, height - 4))
    w = int(np.clip(area / max(h, 1), 8, width - 4))
    mask = np.zeros((h, w), np.uint8)
    if shape == "rect":
        mask[:] = 1
    else:
        cv2.ellipse(mask, (w // 2, h // 2), (max(2, w // 2 - 1), max(2, h // 2 - 1)), 0, 0, 360, 1, -1)
    return mask.astype(bool)


def shape_splice(dst: np.ndarray, src: np.ndarray, shape: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle or ellipse cut from `src` (not an object outline) pasted with hard edges."""
    mask = _shape_mask(*dst.shape[:2], shape, rng)
    h, w = mask.shape
    h, w = min(h, src.shape[0]), min(w, src.shape[1])
    mask = mask[:h, :w]
    sy = int(rng.integers(0, src.shape[0] - h + 1))
    sx = int(rng.integers(0, src.shape[1] - w + 1))
    patch = src[sy:sy + h, sx:sx + w]
    top = int(rng.integers(0, dst.shape[0] - h + 1))
    left = int(rng.integers(0, dst.shape[1] - w + 1))
    out, full = _blend(dst, patch, mask, top, left, 0.0)
    return out, full & (out != dst).any(-1)


def seamless_splice(dst: np.ndarray, src: np.ndarray, rng: np.random.Generator, *,
                    mixed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Poisson (gradient-domain) cloning of an ellipse of `src` into `dst` (cv2.seamlessClone).

    The clone takes the destination's colours at its border: no hard edge and no colour jump,
    the traces a naive detector of pasted segments looks for.
    """
    mask = _shape_mask(*dst.shape[:2], "ellipse", rng)
    h, w = mask.shape
    h, w = min(h, src.shape[0] - 2, dst.shape[0] - 6), min(w, src.shape[1] - 2, dst.shape[1] - 6)
    mask = mask[:h, :w]
    sy = int(rng.integers(0, src.shape[0] - h + 1))
    sx = int(rng.integers(0, src.shape[1] - w + 1))
    patch = np.ascontiguousarray(src[sy:sy + h, sx:sx + w])
    # seamlessClone needs the clone box strictly inside the destination: keep 3 px margin.
    cy = int(rng.integers(h // 2 + 3, dst.shape[0] - (h - h // 2) - 2))
    cx = int(rng.integers(w // 2 + 3, dst.shape[1] - (w - w // 2) - 2))
    flag = cv2.MIXED_CLONE if mixed else cv2.NORMAL_CLONE
    m255 = (mask * 255).astype(np.uint8)
    out = cv2.seamlessClone(patch[..., ::-1].copy(), dst[..., ::-1].copy(), m255, (cx, cy), flag)[..., ::-1]
    out = np.ascontiguousarray(out)
    # seamlessClone's output region is defined by the mask's geometry; the exact changed set
    # is what differs from the destination.
    return out, (out != dst).any(-1)


HELDOUT_METHODS = ("rect", "ellipse", "seamless", "seamless_mixed", "seamless_copy_move")


def compose_heldout(method: str, dst: np.ndarray, src: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if method in ("rect", "ellipse"):
        return shape_splice(dst, src, method, rng)
    if method == "seamless":
        return seamless_splice(dst, src, rng)
    if method == "seamless_mixed":
        return seamless_splice(dst, src, rng, mixed=True)
    if method == "seamless_copy_move":
        return seamless_splice(dst, dst, rng)
    raise ValueError(f"unknown held-out compositing method {method!r}")
