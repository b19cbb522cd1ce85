"""Image sniffing and decoding shared by the services.

The bytes are analysed as uploaded; decoding here is only for pixel-based work (the CNN,
pixel hashes). Headers are read before pixels, so a decompression bomb is refused by its
declared size without allocating, and by its structure (structure.py) before a decoder walks it.
"""

from __future__ import annotations

import dataclasses
import io
import warnings

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from services.common.errors import IMAGE_UNSUPPORTED_FORMAT, ImageTrustError, InvalidImage
from services.common.limits import check_dimensions
from services.common.structure import check_structure

try:  # HEIC/HEIF (iPhone uploads) through libheif.
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    HEIF_SUPPORTED = False

# We enforce our own pixel limit (limits.check_dimensions) before loading; Pillow's
# warning-then-error at 89 MP would otherwise reject legitimate 108 MP phone photos.
Image.MAX_IMAGE_PIXELS = None
# A truncated upload is an error for us, never silently grey-filled.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow warns about hostile or broken files ("Tag data larger than file", "Corrupt EXIF
# data"; a fuzz run raised 12,000 of them): our answer already says what is wrong, and raw
# warnings on stderr would break one JSON object per log line. One process-wide filter, set
# once at import: `warnings.catch_warnings()` around each Pillow call is not thread-safe
# (its save/restore of the global filter list races between decode threads and left an
# "ignore every warning" filter installed for the rest of the process).
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")

SUPPORTED_FORMATS = ("jpeg", "png", "webp", "tiff", "heif")
_PIL_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "TIFF": "tiff", "HEIF": "heif"}
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif")


def sniff_format(data: bytes) -> str | None:
    """The container format from magic bytes, or None. Never trusts the file name."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "heif"
    return None


@dataclasses.dataclass(frozen=True)
class Header:
    format: str
    width: int  # stored width in pixels, before EXIF orientation
    height: int
    mode: str


def _open(data: bytes) -> tuple[Image.Image, str]:
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImage(
            f"not a supported image (first bytes {data[:8].hex()}); send JPEG, PNG, WebP, TIFF or HEIC/HEIF",
            reason=IMAGE_UNSUPPORTED_FORMAT,
            metadata={"first_bytes_hex": data[:8].hex()},
        )
    check_structure(data, fmt)  # TooLarge before Pillow's header reader walks it
    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"cannot read the {fmt} header: {exc}", metadata={"format": fmt}) from exc
    return img, fmt


def probe(data: bytes, max_pixels: int) -> Header:
    """Reads the header only and enforces the pixel limit."""
    img, fmt = _open(data)
    with img:
        check_dimensions(img.width, img.height, max_pixels)
        return Header(fmt, img.width, img.height, img.mode)


def decode_rgb(data: bytes, max_pixels: int, *, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decodes to 8-bit RGB with EXIF orientation applied.

    draft_size lets JPEG decode at 1/2, 1/4 or 1/8 scale in the DCT domain (libjpeg's
    scaled decoding), several times faster on 12 MP photos when a small image is enough.
    """
    img, fmt = _open(data)
    try:
        check_dimensions(img.width, img.height, max_pixels)
        if draft_size is not None and fmt == "jpeg":
            img.draft("RGB", draft_size)
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return to_rgb(img)
    except ImageTrustError:  # our own limits (TooLarge) keep their status
        raise
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError) as exc:
        raise InvalidImage(
            f"cannot decode the {fmt} image (truncated or corrupt?): {exc}", metadata={"format": fmt}
        ) from exc
    except Exception as exc:
        if isinstance(exc, (MemoryError,)):
            raise
        raise InvalidImage(
            f"cannot decode the {fmt} image: {type(exc).__name__}: {exc}", metadata={"format": fmt}
        ) from exc


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode (16-bit TIFF, CMYK, palette, alpha, ...)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Scale 16/32-bit greyscale to 8 bits rather than clipping at 255.
        import numpy as np

        arr = np.asarray(img, dtype=np.float32)
        peak = float(arr.max()) or 1.0
        img = Image.fromarray((arr * (255.0 / peak)).clip(0, 255).astype("uint8"), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite transparency on white, as a viewer would show the listing photo.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
