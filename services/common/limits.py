"""Input limits shared by every service: checked before any decoding or allocation."""

from __future__ import annotations

from services.common.errors import (
    IMAGE_EMPTY,
    MESSAGE_TOO_LARGE,
    InvalidImage,
    InvalidRequest,
    TooLarge,
)

# 65,500 px: the largest side JPEG and WebP can encode; anything claiming more is forged.
MAX_SIDE_PX = 65_500
# 256 characters: far above any real id (UUIDs are 36, snowflake ids 19) and platform name.
# The registry stores these strings and quotes them back in every later match of the image
# (up to MAX_MATCHES sightings per answer), so one call with megabyte ids would make every
# later answer for that photo megabytes long, past the clients' 4 MiB receive limit.
MAX_ID_CHARS = 256
# Seconds since the Unix epoch of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range
# google.protobuf.Timestamp allows and Python's datetime can represent.
MIN_TIMESTAMP_S = -62_135_596_800
MAX_TIMESTAMP_S = 253_402_300_799
MAX_NANOS = 999_999_999  # nanoseconds in a Timestamp's second
_CONTEXT_IDS = ("seller_id", "listing_id", "conversation_id", "platform")


def check_bytes(data: bytes, max_bytes: int) -> None:
    """Rejects empty and oversize uploads with the status a caller can act on."""
    if not data:
        raise InvalidImage(
            "image.data is empty: send the file's bytes",
            reason=IMAGE_EMPTY,
            violations=[("image.data", "empty: send the file's bytes")],
        )
    if len(data) > max_bytes:
        raise TooLarge(
            f"image is {len(data)} bytes; the limit is {max_bytes} bytes",
            reason=MESSAGE_TOO_LARGE,
            metadata={"bytes": len(data), "max_bytes": max_bytes},
        )


def check_dimensions(width: int, height: int, max_pixels: int) -> None:
    """Refuses decompression bombs from the header's declared size, before allocating."""
    if width <= 0 or height <= 0:
        raise InvalidImage(
            f"image declares an empty size {width}x{height}", metadata={"width": width, "height": height}
        )
    if width > MAX_SIDE_PX or height > MAX_SIDE_PX or width * height > max_pixels:
        raise TooLarge(
            f"image declares {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels "
            f"and {MAX_SIDE_PX} px a side (decompression-bomb guard)",
            metadata={
                "width": width,
                "height": height,
                "pixels": width * height,
                "max_pixels": max_pixels,
                "max_side_px": MAX_SIDE_PX,
            },
        )


def check_id(name: str, value: str) -> None:
    """Refuses an id-like string over MAX_ID_CHARS (INVALID_ARGUMENT: resending cannot help)."""
    if len(value) > MAX_ID_CHARS:
        message = f"{name} is {len(value)} characters; the limit is {MAX_ID_CHARS}"
        raise InvalidRequest(
            message,
            metadata={"field": name, "chars": len(value), "max_chars": MAX_ID_CHARS},
            violations=[(name, message)],
        )


def check_context(context) -> None:
    """Validates an imagetrust.v1.Context before anything stores or converts it."""
    for name in _CONTEXT_IDS:
        check_id(f"context.{name}", getattr(context, name))
    if context.HasField("uploaded_at"):
        ts = context.uploaded_at
        if not (MIN_TIMESTAMP_S <= ts.seconds <= MAX_TIMESTAMP_S and 0 <= ts.nanos <= MAX_NANOS):
            message = (
                f"context.uploaded_at ({ts.seconds} s, {ts.nanos} ns) is not a valid timestamp: "
                "seconds must lie in years 1-9999 UTC and nanos in [0, 999999999]"
            )
            raise InvalidRequest(
                message,
                metadata={"field": "context.uploaded_at", "seconds": ts.seconds, "nanos": ts.nanos},
                violations=[("context.uploaded_at", message)],
            )
