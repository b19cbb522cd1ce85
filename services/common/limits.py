"""Input limits shared by every service: checked before any decoding or allocation."""

from __future__ import annotations

from services.common.errors import InvalidImage, TooLarge

# 65,500 px: the largest side JPEG and WebP can encode; anything claiming more is forged.
MAX_SIDE_PX = 65_500


def check_bytes(data: bytes, max_bytes: int) -> None:
    """Rejects empty and oversize uploads with the status a caller can act on."""
    if not data:
        raise InvalidImage("image.data is empty: send the file's bytes")
    if len(data) > max_bytes:
        raise TooLarge(f"image is {len(data)} bytes; the limit is {max_bytes} bytes")


def check_dimensions(width: int, height: int, max_pixels: int) -> None:
    """Refuses decompression bombs from the header's declared size, before allocating."""
    if width <= 0 or height <= 0:
        raise InvalidImage(f"image declares an empty size {width}x{height}")
    if width > MAX_SIDE_PX or height > MAX_SIDE_PX or width * height > max_pixels:
        raise TooLarge(
            f"image declares {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels "
            f"and {MAX_SIDE_PX} px a side (decompression-bomb guard)"
        )
