"""Theft recipes: how a stolen listing photo is edited before it is uploaded again.

Two separate sets. TUNING is what the near-copy design (views, thresholds) was chosen on;
EVALUATION is what bench_reuse_accuracy reports, with other parameter ranges, other
colours, other banner shapes and its own random stream, so the figures are not measured on
the recipes they were tuned to. Every recipe takes and returns a PIL RGB image; the bench
JPEG-encodes the result.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageEnhance, ImageFont

Recipe = Callable[[Image.Image, random.Random], Image.Image]


def _scale(img: Image.Image, factor: float) -> Image.Image:
    return img.resize((max(1, round(img.width * factor)), max(1, round(img.height * factor))), Image.Resampling.LANCZOS)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


# --- tuning set ------------------------------------------------------------------------------
def tune_crop(img: Image.Image, rng: random.Random) -> Image.Image:
    dx, dy = round(img.width * 0.08), round(img.height * 0.08)
    return _scale(img.crop((dx, dy, img.width - dx, img.height - dy)), 0.8)


def tune_mirror(img: Image.Image, rng: random.Random) -> Image.Image:
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def tune_border(img: Image.Image, rng: random.Random) -> Image.Image:
    pad = round(max(img.size) * 0.1)
    out = Image.new("RGB", (img.width + 2 * pad, img.height + 2 * pad), (255, 255, 255))
    out.paste(img, (pad, pad))
    return out


def tune_banner(img: Image.Image, rng: random.Random) -> Image.Image:
    out = img.copy()
    ImageDraw.Draw(out).rectangle((0, round(img.height * 0.85), img.width, img.height), fill=(200, 0, 0))
    return out


TUNING: dict[str, Recipe] = {"crop": tune_crop, "mirror": tune_mirror, "border": tune_border, "overlay": tune_banner}


# --- evaluation set ----------------------------------------------------------------------------
def scale_reencode(img: Image.Image, rng: random.Random) -> Image.Image:
    if rng.random() < 0.5 and max(img.size) > 1080:
        return _scale(img, 1080 / max(img.size))  # the SNS long-edge resize
    return _scale(img, rng.uniform(0.4, 0.9))


def crop(img: Image.Image, rng: random.Random) -> Image.Image:
    """5-15 % of each dimension cut off, split at random between its two sides, then scaled."""
    fx, fy = rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.15)
    dx, dy = round(img.width * fx), round(img.height * fy)
    left, top = rng.randint(0, dx), rng.randint(0, dy)
    out = img.crop((left, top, img.width - (dx - left), img.height - (dy - top)))
    return _scale(out, rng.uniform(0.6, 1.0))


def crop_each_side(img: Image.Image, rng: random.Random) -> Image.Image:
    """5-15 % cut off EACH side independently (keeps 49-81 % of the area): beyond the target."""
    w, h = img.size
    box = (
        round(w * rng.uniform(0.05, 0.15)),
        round(h * rng.uniform(0.05, 0.15)),
        w - round(w * rng.uniform(0.05, 0.15)),
        h - round(h * rng.uniform(0.05, 0.15)),
    )
    return _scale(img.crop(box), rng.uniform(0.6, 1.0))


def mirror(img: Image.Image, rng: random.Random) -> Image.Image:
    return _scale(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), rng.uniform(0.6, 1.0))


def border(img: Image.Image, rng: random.Random) -> Image.Image:
    """Pasted on a plain canvas (white, black or grey), 3-25 % of the long edge per side, uneven."""
    colour = rng.choice(((255, 255, 255), (250, 250, 250), (0, 0, 0), (128, 128, 128)))
    long_edge = max(img.size)
    pads = [round(long_edge * rng.uniform(0.03, 0.25)) for _ in range(4)]
    out = Image.new("RGB", (img.width + pads[0] + pads[2], img.height + pads[1] + pads[3]), colour)
    out.paste(img, (pads[0], pads[1]))
    return _scale(out, rng.uniform(0.5, 1.0))


def overlay(img: Image.Image, rng: random.Random) -> Image.Image:
    """A price banner across the bottom or top (8-18 % of the height), or a price tag in a
    corner, with text."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    text = rng.choice(("SALE 1,980 JPY", "$49.99 FREE SHIPPING", "NEW! 30% OFF", "only 2,500 yen"))
    colour = rng.choice(((220, 20, 60), (255, 215, 0), (0, 0, 0), (255, 255, 255)))
    ink = (255, 255, 255) if colour != (255, 255, 255) else (0, 0, 0)
    kind = rng.random()
    if kind < 0.6:
        band = round(h * rng.uniform(0.08, 0.18))
        top = h - band if rng.random() < 0.75 else 0
        draw.rectangle((0, top, w, top + band), fill=colour)
        draw.text((round(w * 0.05), top + band // 6), text, fill=ink, font=_font(max(10, band * 2 // 3)))
    else:
        tw, th = round(w * rng.uniform(0.25, 0.4)), round(h * rng.uniform(0.12, 0.2))
        x0 = rng.choice((0, w - tw))
        y0 = rng.choice((0, h - th))
        draw.rectangle((x0, y0, x0 + tw, y0 + th), fill=colour)
        draw.text((x0 + tw // 10, y0 + th // 5), text, fill=ink, font=_font(max(10, th // 2)))
    return _scale(out, rng.uniform(0.6, 1.0))


def light(img: Image.Image, rng: random.Random) -> Image.Image:
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
    return ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))


EVALUATION: dict[str, Recipe] = {
    "scale_reencode": scale_reencode,
    "crop": crop,
    "mirror": mirror,
    "border": border,
    "overlay": overlay,
    "light": light,
}
COMBINABLE = ("crop", "mirror", "border", "overlay", "light")


def combination(img: Image.Image, rng: random.Random) -> Image.Image:
    """Two different recipes of COMBINABLE, in random order."""
    for name in rng.sample(COMBINABLE, 2):
        img = EVALUATION[name](img, rng)
    return img


EVALUATION["combo2"] = combination
EVALUATION["crop_each_side"] = crop_each_side  # reported, not a target
