"""Post-processing applied to EVERY sample, authentic or composite, from one distribution.

The parameters are drawn from their own random stream, seeded by the sample index only,
before (and independently of) the decision whether the sample is a composite: the model
cannot learn "re-encoded at quality 70" or "resized" as the label.

Two profiles: TRAIN (cv2/libjpeg JPEG at quality 60-100, area/bilinear resizing) for
training and its validation split, and HELDOUT (Pillow JPEG at other qualities and chroma
subsamplings, WebP, bicubic/Lanczos resizing) for the second test set only.
"""

from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np
from PIL import Image

from services.common.imaging import decode_rgb

_KERNELS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
            "lanczos": cv2.INTER_LANCZOS4}


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    resize_p: float  # probability of a resize
    scale_range: tuple[float, float]  # resize factor (both sides)
    kernels: tuple[str, ...]  # resize interpolations, drawn uniformly
    formats: tuple[tuple[str, float, int, int], ...]  # (codec, probability, min quality, max quality)


TRAIN = Profile(
    "train", resize_p=0.5, scale_range=(0.75, 1.25), kernels=("area", "linear"),
    # 15 % stay lossless (PNG) so the model also sees never-recompressed pixels.
    formats=(("cv2-jpeg", 0.85, 60, 100), ("png", 0.15, 0, 0)),
)
HELDOUT = Profile(
    "heldout", resize_p=0.6, scale_range=(0.6, 1.4), kernels=("cubic", "lanczos"),
    formats=(("pil-jpeg-444", 0.3, 55, 95), ("pil-jpeg-420", 0.3, 55, 95), ("webp", 0.4, 60, 95)),
)
PROFILES = {p.name: p for p in (TRAIN, HELDOUT)}


@dataclasses.dataclass(frozen=True)
class Params:
    scale: float  # 1.0: no resize
    kernel: str
    codec: str
    quality: int


def draw(profile: Profile, rng: np.random.Generator) -> Params:
    """Draws every parameter unconditionally (same number of draws), so streams stay aligned."""
    do_resize = rng.random() < profile.resize_p
    scale = float(rng.uniform(*profile.scale_range))
    kernel = profile.kernels[int(rng.integers(len(profile.kernels)))]
    probs = np.array([f[1] for f in profile.formats])
    codec, _, qmin, qmax = profile.formats[int(rng.choice(len(probs), p=probs / probs.sum()))]
    quality = int(rng.integers(qmin, qmax + 1))
    return Params(scale if do_resize else 1.0, kernel, codec, quality)


def encode(rgb: np.ndarray, codec: str, quality: int) -> bytes:
    if codec == "png":
        ok, buf = cv2.imencode(".png", rgb[..., ::-1])
        return buf.tobytes()
    if codec == "cv2-jpeg":
        ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        return buf.tobytes()
    out = io.BytesIO()
    image = Image.fromarray(rgb)
    if codec == "webp":
        image.save(out, "WEBP", quality=quality, method=4)
    elif codec in ("pil-jpeg-444", "pil-jpeg-420"):
        image.save(out, "JPEG", quality=quality, subsampling=0 if codec.endswith("444") else 2)
    else:
        raise ValueError(f"unknown codec {codec!r}")
    return out.getvalue()


# 120 MP: the serving default (ServerConfig.max_pixels); our samples are far below it.
_MAX_PIXELS = 120_000_000  # pixels


def decode(data: bytes) -> np.ndarray:
    """Decodes with the SERVING decoder (Pillow via services.common.imaging): libjpeg
    builds differ in chroma upsampling, so training pixels must come from the same one."""
    return np.asarray(decode_rgb(data, _MAX_PIXELS))


def apply(rgb: np.ndarray, mask: np.ndarray, params: Params) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Resizes (image with the drawn kernel, mask with nearest) then encodes.

    Returns (encoded bytes, decoded RGB, mask at the final size).
    """
    if params.scale != 1.0:
        h, w = rgb.shape[:2]
        size = (max(8, round(w * params.scale)), max(8, round(h * params.scale)))
        rgb = cv2.resize(rgb, size, interpolation=_KERNELS[params.kernel])
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    data = encode(rgb, params.codec, params.quality)
    return data, decode(data), mask


def recompress_jpeg(data: bytes, quality: int) -> bytes:
    """The "after JPEG re-compression" condition: decode, then Pillow JPEG at `quality`."""
    return encode(decode(data), "pil-jpeg-420", quality)
