"""Compositing methods: how a tampered photo is made, with the exact mask of changed pixels.

Two families, kept apart on purpose:
- TRAIN methods make the training and validation data: SEGMENT_METHODS (the paper's segment
  pasting and its variants: feathered edges, colour matching, scaling, copy-move within one
  photo) and DIVERSE_METHODS (irregular noise-blob splices, Laplacian-pyramid blending,
  inpainting removals, local retouching, pastes with another compression history), which
  widen what "tampered" looks like without using any held-out method.
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


def _pick_segment(
    labels: np.ndarray, rng: np.random.Generator, max_fraction: float = MAX_SEGMENT_FRACTION
) -> np.ndarray:
    ids, counts = np.unique(labels, return_counts=True)
    fractions = counts / labels.size
    ok = ids[(fractions >= MIN_SEGMENT_FRACTION) & (fractions <= max_fraction)]
    if ok.size == 0:  # every segment too big or too small: take the one nearest the range
        ok = ids[[int(np.argmin(np.abs(fractions - max_fraction / 2)))]]
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


def _blend(
    dst: np.ndarray, patch: np.ndarray, mask: np.ndarray, top: int, left: int, feather_sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    alpha = mask.astype(np.float32)
    if feather_sigma > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), feather_sigma)
        # A feathered edge also spreads outward, over the source pixels kept around the
        # segment (CROP_MARGIN); weights too small to change a pixel are cut to exactly 0.
        alpha[alpha < ALPHA_FLOOR] = 0.0
    out = dst.copy()
    region = out[top : top + h, left : left + w].astype(np.float32)
    a = alpha[..., None]
    mixed = np.rint(a * patch.astype(np.float32) + (1 - a) * region).astype(np.uint8)
    out[top : top + h, left : left + w] = mixed
    full = np.zeros(dst.shape[:2], bool)
    full[top : top + h, left : left + w] = alpha > 0
    return out, full


def _place_segment(
    dst_shape: tuple[int, int], src: np.ndarray, src_labels: np.ndarray, rng: np.random.Generator, scale: bool
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A segment of `src` (its bounding-box patch and mask) and where it goes in the destination.

    The random draws and their order are those of the original paste_segment, so the paper's
    composites (and the validation / test sets made of them) stay exactly as they were.
    """
    seg = _pick_segment(src_labels, rng)
    # The patch is the segment's bounding box of the SOURCE photo, so a feathered edge blends
    # in the source's own surroundings of the object, as a careless lasso cut would.
    patch, mask = _crop_to_mask(src, seg)
    if scale:
        s = rng.uniform(*SCALE_RANGE)
        size = (max(4, round(patch.shape[1] * s)), max(4, round(patch.shape[0] * s)))
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    patch, mask = _fit(patch, mask, *dst_shape)
    if not mask.any():  # cropped away entirely: fall back to the unscaled segment's corner
        mask[: min(4, mask.shape[0]), : min(4, mask.shape[1])] = True
    h, w = mask.shape
    top = int(rng.integers(0, dst_shape[0] - h + 1))
    left = int(rng.integers(0, dst_shape[1] - w + 1))
    return patch, mask, top, left


def paste_segment(
    dst: np.ndarray,
    src: np.ndarray,
    src_labels: np.ndarray,
    rng: np.random.Generator,
    *,
    feather: bool = False,
    color_match: bool = False,
    scale: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's composite: one human-segmented object of `src` pasted into `dst`."""
    patch, mask, top, left = _place_segment(dst.shape[:2], src, src_labels, rng, scale)
    h, w = mask.shape
    if color_match:
        region = dst[top : top + h, left : left + w]
        patch = _color_match(patch, mask, region, rng.uniform(*COLOR_MATCH_STRENGTH))
    sigma = rng.uniform(*FEATHER_SIGMA_RANGE) if feather else 0.0
    return _blend(dst, patch, mask, top, left, sigma)


def copy_move(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, feather: bool = False, scale: bool = False
) -> tuple[np.ndarray, np.ndarray]:
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


# ---- diverse training methods: other shapes, blends, removals, retouches, compression histories ----
# None of them uses a held-out ingredient: no rectangles or ellipses, no cv2.seamlessClone,
# no Pillow or WebP codec.

BLOB_BOX_RANGE = (0.15, 0.5)  # fraction of each destination side: the box a blob grows in
BLOB_SMOOTH_RANGE = (0.04, 0.12)  # fraction of the box's shorter side: Gaussian sigma of the noise (blob size)
BLOB_FILL_RANGE = (0.3, 0.6)  # fraction of the box's pixels the blob(s) cover
MIN_BLOB_BOX = 16  # pixels: smaller boxes hold no blob worth a 64 px tile
BLOB_TAPER = 0.3  # exponent of the Hann window: < 1 flattens it, so the blob is not one round lump


def _blob_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Irregular blob(s): smoothed white noise thresholded inside a box, for shapes that are
    neither an object outline (segments) nor a geometric figure (the held-out forger's)."""
    bh = max(MIN_BLOB_BOX, int(height * rng.uniform(*BLOB_BOX_RANGE)))
    bw = max(MIN_BLOB_BOX, int(width * rng.uniform(*BLOB_BOX_RANGE)))
    noise = rng.standard_normal((bh, bw)).astype(np.float32)
    field = cv2.GaussianBlur(noise, (0, 0), rng.uniform(*BLOB_SMOOTH_RANGE) * min(bh, bw))
    # A window that is 0 on the box's border (the blob never follows its straight sides) but flat
    # inside, so the thresholded noise keeps several irregular lobes instead of one round lump.
    window = (np.outer(np.hanning(bh), np.hanning(bw)) ** BLOB_TAPER).astype(np.float32)
    field = (field - field.min()) * window
    return field > np.quantile(field, 1.0 - rng.uniform(*BLOB_FILL_RANGE))


def _place(shape: tuple[int, int], box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A box-sized mask put at a random position of a full-size (height, width) mask."""
    h, w = min(box.shape[0], shape[0]), min(box.shape[1], shape[1])
    top, left = int(rng.integers(0, shape[0] - h + 1)), int(rng.integers(0, shape[1] - w + 1))
    full = np.zeros(shape, bool)
    full[top : top + h, left : left + w] = box[:h, :w]
    return full


def _region(labels: np.ndarray, rng: np.random.Generator, max_fraction: float) -> np.ndarray:
    """The region a local edit touches: half the time a segment of the photo itself (an object,
    as a retoucher would select it), otherwise a noise blob (a brush stroke)."""
    if rng.random() < 0.5:
        return _pick_segment(labels, rng, max_fraction)
    return _place(labels.shape, _blob_mask(*labels.shape, rng), rng)


def blob_splice(
    dst: np.ndarray, src: np.ndarray, rng: np.random.Generator, *, feather: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """An irregular blob of `src` (from a random place of it) pasted into `dst`."""
    mask = _blob_mask(*dst.shape[:2], rng)
    h, w = min(mask.shape[0], src.shape[0]), min(mask.shape[1], src.shape[1])
    mask = mask[:h, :w]
    sy, sx = int(rng.integers(0, src.shape[0] - h + 1)), int(rng.integers(0, src.shape[1] - w + 1))
    top, left = int(rng.integers(0, dst.shape[0] - h + 1)), int(rng.integers(0, dst.shape[1] - w + 1))
    sigma = rng.uniform(*FEATHER_SIGMA_RANGE) if feather else 0.0
    return _blend(dst, src[sy : sy + h, sx : sx + w], mask, top, left, sigma)


PYRAMID_LEVELS = (3, 5)  # Laplacian pyramid levels (inclusive): the blend's reach is ~2**levels pixels


def _laplacian_blend(a: np.ndarray, b: np.ndarray, weight: np.ndarray, levels: int) -> np.ndarray:
    """Burt-Adelson multi-band blend: each frequency band of b over a is mixed with the
    weight blurred to that band's scale (sharp seams for fine detail, soft for colour)."""
    ga, gb, gw = [a.astype(np.float32)], [b.astype(np.float32)], [weight.astype(np.float32)]
    for _ in range(levels):
        ga.append(cv2.pyrDown(ga[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        gw.append(cv2.pyrDown(gw[-1]))
    out = gw[-1][..., None] * gb[-1] + (1 - gw[-1][..., None]) * ga[-1]
    for k in range(levels - 1, -1, -1):
        size = (ga[k].shape[1], ga[k].shape[0])
        band_a = ga[k] - cv2.pyrUp(ga[k + 1], dstsize=size)
        band_b = gb[k] - cv2.pyrUp(gb[k + 1], dstsize=size)
        w = gw[k][..., None]
        out = cv2.pyrUp(out, dstsize=size) + w * band_b + (1 - w) * band_a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def pyramid_blend(
    dst: np.ndarray, src: np.ndarray, src_labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A segment of `src` multi-band blended into `dst`: the low frequencies (colour, shading)
    follow the destination near the seam, a gradient-domain-like look that is not Poisson."""
    patch, mask, top, left = _place_segment(dst.shape[:2], src, src_labels, rng, bool(rng.random() < 0.5))
    h, w = mask.shape
    levels = int(rng.integers(PYRAMID_LEVELS[0], PYRAMID_LEVELS[1] + 1))
    pasted = dst.copy()
    pasted[top : top + h, left : left + w] = patch  # the segment with its source surroundings
    weight = np.zeros(dst.shape[:2], np.float32)
    weight[top : top + h, left : left + w] = mask
    blended = _laplacian_blend(dst, pasted, weight, levels)
    # The coarse bands spread over the whole photo at tiny amplitudes; an editor's blend stays
    # near the object, so changes are kept within 2**levels pixels of it.
    reach = cv2.distanceTransform((weight == 0).astype(np.uint8), cv2.DIST_L2, 5) <= 2**levels
    out = np.where(reach[..., None], blended, dst)
    return out, (out != dst).any(-1)


INPAINT_MAX_FRACTION = 0.08  # fraction of the photo: larger removals are smeared blotches
INPAINT_RADIUS_RANGE = (3, 9)  # pixels: neighbourhood cv2.inpaint fills from
INPAINT_MARGIN = 24  # pixels of context kept around the region (inpainting reads only nearby pixels)


def inpaint_removal(dst: np.ndarray, dst_labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A region of `dst` removed and filled by cv2.inpaint (Telea or Navier-Stokes): an object
    removal, the forgery that pastes nothing from another photo."""
    region = _region(dst_labels, rng, INPAINT_MAX_FRACTION)
    # A removal brush covers the object's anti-aliased outline too: grow the region by 1 px.
    region = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    radius = int(rng.integers(*INPAINT_RADIUS_RANGE))
    flag = cv2.INPAINT_TELEA if rng.random() < 0.5 else cv2.INPAINT_NS
    ys, xs = np.nonzero(region)
    y0, x0 = max(0, ys.min() - INPAINT_MARGIN), max(0, xs.min() - INPAINT_MARGIN)
    y1, x1 = ys.max() + 1 + INPAINT_MARGIN, xs.max() + 1 + INPAINT_MARGIN  # slicing clips at the edge
    crop = np.ascontiguousarray(dst[y0:y1, x0:x1])
    filled = cv2.inpaint(crop, region[y0:y1, x0:x1].astype(np.uint8) * 255, radius, flag)
    out = dst.copy()
    out[y0:y1, x0:x1] = filled
    return out, (out != dst).any(-1)


RETOUCH_OPS = ("blur", "sharpen", "noise", "resample")
RETOUCH_MAX_FRACTION = 0.3  # fraction of the photo a local retouch covers at most
BLUR_SIGMA_RANGE = (0.6, 1.6)  # pixels: Gaussian sigma of a local blur
SHARPEN_AMOUNT_RANGE = (0.5, 1.5)  # unsharp-mask gain (1: the detail layer added once)
SHARPEN_SIGMA = 1.0  # pixels: Gaussian sigma of the unsharp mask's blur
NOISE_SIGMA_RANGE = (2.0, 6.0)  # 8-bit grey levels: std of the noise added to a region
RESAMPLE_RANGE = (0.4, 0.8)  # factor of the down-then-up resampling (lost detail, other interpolation)


def _retouched(image: np.ndarray, op: str, rng: np.random.Generator) -> np.ndarray:
    """The whole image with one edit applied; the caller keeps it only inside a region."""
    x = image.astype(np.float32)
    if op == "blur":
        y = cv2.GaussianBlur(x, (0, 0), rng.uniform(*BLUR_SIGMA_RANGE))
    elif op == "sharpen":
        y = x + rng.uniform(*SHARPEN_AMOUNT_RANGE) * (x - cv2.GaussianBlur(x, (0, 0), SHARPEN_SIGMA))
    elif op == "noise":
        y = x + rng.normal(0.0, rng.uniform(*NOISE_SIGMA_RANGE), x.shape).astype(np.float32)
    elif op == "resample":
        f = rng.uniform(*RESAMPLE_RANGE)
        small = cv2.resize(
            image, (max(4, round(image.shape[1] * f)), max(4, round(image.shape[0] * f))), interpolation=cv2.INTER_AREA
        )
        y = cv2.resize(small, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    else:
        raise ValueError(f"unknown retouch {op!r}")
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def local_retouch(dst: np.ndarray, dst_labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blur, sharpening, extra noise or resampling inside one region of `dst`: a splice's
    region often carries another noise level and sharpness than the photo around it."""
    region = _region(dst_labels, rng, RETOUCH_MAX_FRACTION)
    edited = _retouched(dst, RETOUCH_OPS[int(rng.integers(len(RETOUCH_OPS)))], rng)
    sigma = rng.uniform(*FEATHER_SIGMA_RANGE) if rng.random() < 0.5 else 0.0
    out, full = _blend(dst, edited, region, 0, 0, sigma)
    return out, full & (out != dst).any(-1)


SOURCE_JPEG_QUALITY = (40, 90)  # cv2 JPEG quality the source photo had before its segment was cut
GRID = 8  # pixels: the JPEG block size


def paste_recompressed(
    dst: np.ndarray, src: np.ndarray, src_labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A segment pasted from a copy of `src` that was JPEG-compressed at its own quality and
    off the 8x8 grid: the composite holds two compression histories."""
    dy, dx = int(rng.integers(GRID)), int(rng.integers(GRID))
    quality = int(rng.integers(SOURCE_JPEG_QUALITY[0], SOURCE_JPEG_QUALITY[1] + 1))
    # Encoding the photo shifted by (dy, dx) and shifting it back puts its blocks off the
    # grid the rest of the pipeline (and the final save) uses.
    shifted = np.ascontiguousarray(np.roll(src, (-dy, -dx), axis=(0, 1))[..., ::-1])
    ok, buf = cv2.imencode(".jpg", shifted, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("cv2 could not JPEG-encode the source photo")
    degraded = np.roll(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1], (dy, dx), axis=(0, 1))
    return paste_segment(dst, np.ascontiguousarray(degraded), src_labels, rng, feather=bool(rng.random() < 0.5))


SEGMENT_METHODS = ("paste", "paste_feather", "paste_color", "paste_scaled", "paste_all", "copy_move")
DIVERSE_METHODS = ("blob_splice", "pyramid_blend", "inpaint", "local_retouch", "paste_recompressed")
TRAIN_METHODS = SEGMENT_METHODS + DIVERSE_METHODS


def compose_train(
    method: str,
    dst: np.ndarray,
    dst_labels: np.ndarray,
    src: np.ndarray,
    src_labels: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
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
    elif method == "blob_splice":
        out, mask = blob_splice(dst, src, rng, feather=bool(rng.random() < 0.5))
    elif method == "pyramid_blend":
        out, mask = pyramid_blend(dst, src, src_labels, rng)
    elif method == "inpaint":
        out, mask = inpaint_removal(dst, dst_labels, rng)
    elif method == "local_retouch":
        out, mask = local_retouch(dst, dst_labels, rng)
    elif method == "paste_recompressed":
        out, mask = paste_recompressed(dst, src, src_labels, rng)
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


def shape_splice(
    dst: np.ndarray, src: np.ndarray, shape: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle or ellipse cut from `src` (not an object outline) pasted with hard edges."""
    mask = _shape_mask(*dst.shape[:2], shape, rng)
    h, w = mask.shape
    h, w = min(h, src.shape[0]), min(w, src.shape[1])
    mask = mask[:h, :w]
    sy = int(rng.integers(0, src.shape[0] - h + 1))
    sx = int(rng.integers(0, src.shape[1] - w + 1))
    patch = src[sy : sy + h, sx : sx + w]
    top = int(rng.integers(0, dst.shape[0] - h + 1))
    left = int(rng.integers(0, dst.shape[1] - w + 1))
    out, full = _blend(dst, patch, mask, top, left, 0.0)
    return out, full & (out != dst).any(-1)


def seamless_splice(
    dst: np.ndarray, src: np.ndarray, rng: np.random.Generator, *, mixed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
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
    patch = np.ascontiguousarray(src[sy : sy + h, sx : sx + w])
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


def compose_heldout(
    method: str, dst: np.ndarray, src: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    if method in ("rect", "ellipse"):
        return shape_splice(dst, src, method, rng)
    if method == "seamless":
        return seamless_splice(dst, src, rng)
    if method == "seamless_mixed":
        return seamless_splice(dst, src, rng, mixed=True)
    if method == "seamless_copy_move":
        return seamless_splice(dst, dst, rng)
    raise ValueError(f"unknown held-out compositing method {method!r}")
