"""Post-processing applied to EVERY sample, authentic or composite, from one distribution.

The parameters are drawn from their own random stream, seeded by the sample index only,
before (and independently of) the decision whether the sample is a composite: the model
cannot learn "re-encoded at quality 70" or "resized" as the label.

Three profiles: TRAIN (cv2/libjpeg JPEG at quality 60-100, area/bilinear resizing) for
the paper-style training data and the validation test set, TRAIN_DIVERSE (TRAIN widened:
cv2 JPEG also with 4:4:4 chroma, gamma, mild sensor-like noise, a wider resize range) for
the diverse training generator, and HELDOUT (Pillow JPEG at other qualities and chroma
subsamplings, WebP, bicubic/Lanczos resizing) for the second test set only.
"""

from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np
from PIL import Image

from services.common.imaging import decode_rgb

_KERNELS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    resize_p: float  # probability of a resize
    scale_range: tuple[float, float]  # resize factor (both sides)
    kernels: tuple[str, ...]  # resize interpolations, drawn uniformly
    formats: tuple[tuple[str, float, int, int], ...]  # (codec, probability, min quality, max quality)
    gamma_p: float = 0.0  # probability of a gamma change (tone curve) before encoding
    gamma_range: tuple[float, float] = (1.0, 1.0)  # exponent on [0, 1] intensities
    noise_p: float = 0.0  # probability of added Gaussian noise before encoding
    noise_range: tuple[float, float] = (0.0, 0.0)  # 8-bit grey levels: std of that noise


TRAIN = Profile(
    "train",
    resize_p=0.5,
    scale_range=(0.75, 1.25),
    kernels=("area", "linear"),
    # 15 % stay lossless (PNG) so the model also sees never-recompressed pixels.
    formats=(("cv2-jpeg", 0.85, 60, 100), ("png", 0.15, 0, 0)),
)
TRAIN_DIVERSE = Profile(
    "train_diverse",
    resize_p=0.5,
    scale_range=(0.7, 1.3),
    kernels=("area", "linear"),
    # Still only cv2/libjpeg and PNG (Pillow and WebP are the held-out pipeline's); 4:4:4
    # chroma is what high-quality exports use and removes the 4:2:0 colour smoothing.
    formats=(("cv2-jpeg", 0.55, 60, 100), ("cv2-jpeg-444", 0.3, 60, 100), ("png", 0.15, 0, 0)),
    gamma_p=0.3,
    gamma_range=(0.8, 1.25),
    noise_p=0.2,
    noise_range=(0.5, 2.0),
)
HELDOUT = Profile(
    "heldout",
    resize_p=0.6,
    scale_range=(0.6, 1.4),
    kernels=("cubic", "lanczos"),
    formats=(("pil-jpeg-444", 0.3, 55, 95), ("pil-jpeg-420", 0.3, 55, 95), ("webp", 0.4, 60, 95)),
)
PROFILES = {p.name: p for p in (TRAIN, TRAIN_DIVERSE, HELDOUT)}


@dataclasses.dataclass(frozen=True)
class Params:
    scale: float  # 1.0: no resize
    kernel: str
    codec: str
    quality: int
    gamma: float = 1.0  # 1.0: no tone change
    noise_sigma: float = 0.0  # 8-bit grey levels; 0: no noise
    noise_seed: int = 0  # seeds the noise pixels, so a sample stays a function of its index


def draw(profile: Profile, rng: np.random.Generator) -> Params:
    """Draws every parameter unconditionally (same number of draws), so streams stay aligned."""
    do_resize = rng.random() < profile.resize_p
    scale = float(rng.uniform(*profile.scale_range))
    kernel = profile.kernels[int(rng.integers(len(profile.kernels)))]
    probs = np.array([f[1] for f in profile.formats])
    codec, _, qmin, qmax = profile.formats[int(rng.choice(len(probs), p=probs / probs.sum()))]
    quality = int(rng.integers(qmin, qmax + 1))
    # Drawn after the parameters above, so the earlier profiles' draws are unchanged by them.
    do_gamma, gamma = rng.random() < profile.gamma_p, float(rng.uniform(*profile.gamma_range))
    do_noise, sigma = rng.random() < profile.noise_p, float(rng.uniform(*profile.noise_range))
    noise_seed = int(rng.integers(2**31))
    return Params(
        scale if do_resize else 1.0,
        kernel,
        codec,
        quality,
        gamma if do_gamma else 1.0,
        sigma if do_noise else 0.0,
        noise_seed,
    )


def _cv2_encode(ext: str, rgb: np.ndarray, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(ext, rgb[..., ::-1], params)
    if not ok:
        raise RuntimeError(f"cv2 could not encode the image as {ext}")
    return buf.tobytes()


def encode(rgb: np.ndarray, codec: str, quality: int) -> bytes:
    if codec == "png":
        return _cv2_encode(".png", rgb, [])
    if codec == "cv2-jpeg":
        return _cv2_encode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if codec == "cv2-jpeg-444":
        return _cv2_encode(
            ".jpg",
            rgb,
            [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444],
        )
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


def _tone_and_noise(rgb: np.ndarray, params: Params) -> np.ndarray:
    """Gamma and Gaussian noise on the WHOLE image (both classes alike); a no-op by default."""
    if params.gamma == 1.0 and params.noise_sigma == 0.0:
        return rgb
    x = 255.0 * (rgb.astype(np.float32) / 255.0) ** params.gamma
    if params.noise_sigma > 0:
        noise_rng = np.random.default_rng(params.noise_seed)
        x = x + noise_rng.normal(0.0, params.noise_sigma, x.shape).astype(np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def apply(rgb: np.ndarray, mask: np.ndarray, params: Params) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Resizes (image with the drawn kernel, mask with nearest) then encodes.

    Returns (encoded bytes, decoded RGB, mask at the final size). Gamma and noise come first:
    they stand for the camera, resizing and encoding for the uploader.
    """
    rgb = _tone_and_noise(rgb, params)
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
