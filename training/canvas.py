"""Training canvases for the consistency model, built on the fly, deterministic by (seed, i).

A canvas is a crop of a host photo at native resolution. Half the canvases get a donor
region: from another photo (another camera, or another BSDS photo), or from the same photo
given its own processing history (resize with another kernel or factor, JPEG at another
quality, blur, sharpening, gamma, noise). Then one final history is applied to the whole
canvas (optional resize, JPEG q60-95 with PIL or OpenCV, 4:2:0 or 4:4:4), the same for
pristine and composite canvases, so "re-saved" can never be the label.

The label is per pixel (donor mask after the final resize); patches get the donor
fraction they cover. Nothing here is used by the evaluation sets: those are built by
training/heldout_sets.py with recipes written separately.
"""

from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np
from PIL import Image

from training import bsds, camera_photos

# px: the largest canvas side. Big enough for realistic donor sizes and many patches,
# small enough that one canvas costs ~0.1 s to build.
MAX_SIDE = 1024
MIN_SIDE = 256  # px
RESIZE_KERNELS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_NEAREST, cv2.INTER_LANCZOS4)


@dataclasses.dataclass(frozen=True)
class Canvas:
    image: np.ndarray  # (H, W, 3) uint8 RGB, after the final history
    mask: np.ndarray  # (H, W) float32 in [0, 1]: donor fraction per pixel
    composite: bool
    recipe: str


def jpeg(image: np.ndarray, quality: int, rng: np.random.Generator, subsampling: int | None = None) -> np.ndarray:
    """Re-encode with PIL (4:2:0 or 4:4:4) or OpenCV, chosen by rng."""
    if rng.random() < 0.5:
        sub = int(rng.choice([0, 2])) if subsampling is None else subsampling
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=int(quality), subsampling=sub)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    decoded = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    assert ok and decoded is not None
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def resize(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    size = (max(8, round(w * factor)), max(8, round(h * factor)))
    return cv2.resize(image, size, interpolation=int(rng.choice(RESIZE_KERNELS)))


def history(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One or two processing steps, each different from a camera's own pipeline."""
    steps = []
    out = image
    for op in rng.choice(
        ["resize", "jpeg", "blur", "sharpen", "gamma", "noise"], size=int(rng.integers(1, 3)), replace=False
    ):
        if op == "resize":
            out = resize(out, float(rng.uniform(0.5, 1.6)), rng)
        elif op == "jpeg":
            out = jpeg(out, int(rng.integers(50, 96)), rng)
        elif op == "blur":
            out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.5, 1.5)))
        elif op == "sharpen":
            soft = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.8, 2.0)))
            out = cv2.addWeighted(out, 1 + float(rng.uniform(0.3, 1.2)), soft, -float(rng.uniform(0.3, 1.2)), 0)
        elif op == "gamma":
            g = float(rng.uniform(0.6, 1.6))
            lut = np.clip(255.0 * (np.arange(256) / 255.0) ** g, 0, 255).astype(np.uint8)
            out = lut[out]
        else:
            noise = rng.normal(0, float(rng.uniform(1.0, 4.0)), out.shape)
            out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        steps.append(str(op))
    return np.ascontiguousarray(out), "+".join(steps)


def random_mask(h: int, w: int, rng: np.random.Generator, labels: np.ndarray | None = None) -> np.ndarray:
    """A donor region of 3-40% of the canvas: ellipse, polygon, rectangle or a BSDS segment."""
    area = float(rng.uniform(0.03, 0.4)) * h * w
    kind = rng.choice(
        ["ellipse", "polygon", "rect", "segment"] if labels is not None else ["ellipse", "polygon", "rect"]
    )
    mask = np.zeros((h, w), np.uint8)
    if kind == "segment":
        assert labels is not None
        seg = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        ids, counts = np.unique(seg, return_counts=True)
        ok = ids[(counts > 0.03 * h * w) & (counts < 0.5 * h * w)]
        if len(ok):
            mask = (seg == rng.choice(ok)).astype(np.uint8)
            return mask.astype(np.float32)
        kind = "ellipse"
    side = np.sqrt(area)
    aspect = float(rng.uniform(0.5, 2.0))
    bh, bw = min(h - 2, side * np.sqrt(aspect)), min(w - 2, side / np.sqrt(aspect))
    cy, cx = rng.uniform(bh / 2, h - bh / 2), rng.uniform(bw / 2, w - bw / 2)
    if kind == "ellipse":
        cv2.ellipse(mask, (int(cx), int(cy)), (int(bw / 2), int(bh / 2)), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif kind == "rect":
        mask[int(cy - bh / 2) : int(cy + bh / 2), int(cx - bw / 2) : int(cx + bw / 2)] = 1
    else:
        n = int(rng.integers(5, 10))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.5, 1.0, n)
        pts = np.stack([cx + rad * bw / 2 * np.cos(ang), cy + rad * bh / 2 * np.sin(ang)], axis=1).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    return mask.astype(np.float32)


class CanvasGenerator:
    """Canvas i of a split is a pure function of (seed, i)."""

    def __init__(self, split: str, seed: int = 0, max_side: int = MAX_SIDE) -> None:
        self.split = split
        self.seed = seed
        self.max_side = max_side
        self.cameras = camera_photos.photos(split)
        # Validation canvases (model selection, calibration) use validation makes only: BSDS
        # val photos are the report's same-pipeline test set, BSDS train photos were trained on.
        self.bsds = bsds.list_photos("train") if split == "train" else []

    def _source(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, str]:
        """A random genuine photo: a camera photo (60%) or a BSDS photo with its segments."""
        if not self.bsds or rng.random() < 0.6:
            photo = self.cameras[int(rng.integers(len(self.cameras)))]
            return camera_photos.load_rgb(photo.path), None, photo.make
        p = self.bsds[int(rng.integers(len(self.bsds)))]
        rgb, labels = bsds._load(p.image_path, p.segments_path)
        return rgb, labels, "bsds"

    def _crop(self, image: np.ndarray, labels: np.ndarray | None, rng: np.random.Generator):
        h, w = image.shape[:2]
        ch = min(h, int(rng.integers(MIN_SIDE, self.max_side + 1)))
        cw = min(w, int(rng.integers(MIN_SIDE, self.max_side + 1)))
        # Crops start on the 8x8 grid half of the time: a camera's JPEG grid survives a
        # grid-aligned crop, and a donor pasted on- or off-grid must both be learnt.
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        if rng.random() < 0.5:
            y, x = y // 8 * 8, x // 8 * 8
        crop = image[y : y + ch, x : x + cw]
        lab = labels[y : y + ch, x : x + cw] if labels is not None else None
        return np.ascontiguousarray(crop), lab

    def __call__(self, i: int) -> Canvas:
        rng = np.random.default_rng([self.seed, i, 7])
        host_img, host_labels, host_make = self._source(rng)
        canvas, labels = self._crop(host_img, host_labels, rng)
        h, w = canvas.shape[:2]
        mask = np.zeros((h, w), np.float32)
        composite = bool(rng.random() < 0.5)
        recipe = "pristine"
        if composite:
            mask = random_mask(h, w, rng, labels)
            if rng.random() < 0.5:
                # Another photo: another camera (or another BSDS photo), optionally resized.
                for _ in range(5):
                    d_img, _, d_make = self._source(rng)
                    if d_make != host_make or d_make == "bsds":
                        break
                if rng.random() < 0.5:
                    d_img = resize(d_img, float(rng.uniform(0.4, 1.3)), rng)
                donor, _ = self._crop(d_img, None, rng)
                if donor.shape[:2] != (h, w):
                    donor = cv2.resize(donor, (w, h), interpolation=int(rng.choice(RESIZE_KERNELS)))
                recipe = f"splice:{d_make}"
            else:
                # The same photo with its own history, resampled back to the canvas size.
                donor, steps = history(canvas, rng)
                if donor.shape[:2] != (h, w):
                    donor = cv2.resize(donor, (w, h), interpolation=int(rng.choice(RESIZE_KERNELS)))
                recipe = f"history:{steps}"
            if rng.random() < 0.3:
                soft = cv2.GaussianBlur(mask, (0, 0), float(rng.uniform(1.0, 4.0)))
                mask = soft
            canvas = (canvas * (1 - mask[..., None]) + donor * mask[..., None]).round().astype(np.uint8)
        # The final history, shared by pristine and composite canvases.
        if rng.random() < 0.3:
            f = float(rng.uniform(0.5, 0.95))
            canvas = resize(canvas, f, rng)
            mask = cv2.resize(mask, (canvas.shape[1], canvas.shape[0]), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.8:
            canvas = jpeg(canvas, int(rng.integers(60, 96)), rng)
        return Canvas(np.ascontiguousarray(canvas), mask.astype(np.float32), composite, recipe)
