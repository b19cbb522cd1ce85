"""Cuts the metadata blocks (EXIF, XMP, ICC, Photoshop IRB) out of each container format.

JPEG goes through our own marker parser (jpeg.py); PNG, WebP, TIFF and HEIF through
Pillow's header reader (pillow-heif for HEIF), which reads chunks and boxes without
decoding pixels. The bytes are never re-encoded.
"""

from __future__ import annotations

import dataclasses
import io

from PIL import Image

from services.metadata import heif, jpeg

EXIF_HEADER = b"Exif\x00\x00"
TIFF_TAG_XMP = 700  # TIFF XMLPacket
TIFF_TAG_IRB = 34377  # TIFF Photoshop image resources


@dataclasses.dataclass
class Blocks:
    exif: bytes | None = None  # TIFF structure
    xmp: bytes | None = None
    icc: bytes | None = None
    irb: bytes | None = None
    jpeg: jpeg.JpegStructure | None = None
    heif: heif.HeifInfo | None = None
    # EXIF orientation as stored, where the decoder rewrote it (pillow-heif resets it to 1).
    original_orientation: int = 0


def _tiff_body(raw: object) -> bytes | None:
    if not isinstance(raw, (bytes, bytearray)) or not raw:
        return None
    raw = bytes(raw)
    if raw.startswith(EXIF_HEADER):
        raw = raw[len(EXIF_HEADER) :]
    return raw if raw[:4] in (b"II*\x00", b"MM\x00*") else None


def _as_bytes(raw: object) -> bytes | None:
    if isinstance(raw, str):
        return raw.encode("utf-8")
    if isinstance(raw, (bytes, bytearray)) and raw:
        return bytes(raw)
    if isinstance(raw, tuple) and raw and all(isinstance(v, int) for v in raw):
        return bytes(v & 0xFF for v in raw)
    return None


def read(data: bytes, fmt: str) -> Blocks:
    """Never raises for malformed metadata: what cannot be read is simply absent."""
    if fmt == "jpeg":
        structure = jpeg.parse(data)
        xmp = structure.xmp
        if xmp is not None and structure.xmp_extended:
            xmp = xmp + structure.xmp_extended
        return Blocks(structure.exif, xmp, structure.icc, structure.irb, jpeg=structure)
    blocks = Blocks()
    if fmt == "heif":
        blocks.heif = heif.read(data)
    try:
        img = Image.open(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - probe() already reported an unreadable header
        return blocks
    with img:
        info = img.info
        blocks.exif = data if fmt == "tiff" else _tiff_body(info.get("exif"))
        blocks.icc = _as_bytes(info.get("icc_profile"))
        blocks.xmp = _as_bytes(info.get("xmp") or info.get("XML:com.adobe.xmp"))
        if fmt == "tiff":
            tags = getattr(img, "tag_v2", {})
            blocks.xmp = blocks.xmp or _as_bytes(tags.get(TIFF_TAG_XMP))
            blocks.irb = _as_bytes(tags.get(TIFF_TAG_IRB))
        orientation = info.get("original_orientation")
        if isinstance(orientation, int) and 1 <= orientation <= 8:
            blocks.original_orientation = orientation
    return blocks
