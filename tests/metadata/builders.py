"""Test inputs built on the fly with Pillow and a tiny EXIF (TIFF) writer.

Pillow writes EXIF IFD0/ExifIFD/GPS tags but no IFD1 thumbnail, so thumbnails (Kee,
Johnson & Farid) need the small writer below.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

ASCII, SHORT, LONG = 2, 3, 4


def textured(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: smooth gradients, edges and noise (JPEG has work to do)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 128 + 60 * np.sin(x / (17 + seed)) * np.cos(y / 23) + 40 * ((x // 64 + y // 48) % 2)
    rgb = np.stack([base, base * 0.8 + 30, 255 - base], axis=-1) + rng.normal(0, 8, (height, width, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def jpeg_bytes(img: Image.Image, quality: int = 90, **save_args) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, **save_args)
    return buf.getvalue()


def pillow_exif(**tags) -> Image.Exif:
    """Image.Exif from friendly names (IFD0, ExifIFD and GPS)."""
    exif = Image.Exif()
    ifd0 = {"make": 0x010F, "model": 0x0110, "software": 0x0131, "datetime": 0x0132, "orientation": 0x0112}
    exif_ifd = {
        "datetime_original": 0x9003,
        "datetime_digitized": 0x9004,
        "exif_width": 0xA002,
        "exif_height": 0xA003,
        "image_unique_id": 0xA420,
        "exposure_time": 0x829A,
    }
    for name, value in tags.items():
        if name in ifd0:
            exif[ifd0[name]] = value
        elif name in exif_ifd:
            exif.get_ifd(0x8769)[exif_ifd[name]] = value
        elif name == "gps":
            lat, lon = value
            exif.get_ifd(0x8825).update({1: "N", 2: (float(lat), 0.0, 0.0), 3: "E", 4: (float(lon), 0.0, 0.0)})
        else:
            raise KeyError(name)
    return exif


def _ifd(entries: list[tuple[int, int, object]], start: int, next_ifd: int) -> tuple[bytes, bytes]:
    """One little-endian IFD at offset `start` and its out-of-line data after it."""
    entries = sorted(entries)
    table_size = 2 + 12 * len(entries) + 4
    data_off = start + table_size
    table, data = struct.pack("<H", len(entries)), b""
    for tag, typ, value in entries:
        if typ == ASCII:
            raw = value.encode() + b"\x00"
            if len(raw) <= 4:
                table += struct.pack("<HHI", tag, typ, len(raw)) + raw.ljust(4, b"\x00")
            else:
                table += struct.pack("<HHII", tag, typ, len(raw), data_off + len(data))
                data += raw + (b"\x00" if len(raw) % 2 else b"")
        elif typ == SHORT:
            table += struct.pack("<HHIHH", tag, typ, 1, value, 0)
        else:
            table += struct.pack("<HHII", tag, typ, 1, value)
    table += struct.pack("<I", next_ifd)
    return table, data


def exif_with_thumbnail(
    thumb_jpeg: bytes,
    make: str = "Canon",
    model: str = "Canon EOS 40D",
    width: int = 0,
    height: int = 0,
    dto: str = "2020:01:02 03:04:05",
) -> bytes:
    """APP1 payload ("Exif\\0\\0" + TIFF) with IFD0, ExifIFD and an IFD1 JPEG thumbnail."""

    # Layout: header(8) | IFD0 | ExifIFD | IFD1 | thumbnail. Offsets are computed in two passes.
    def build(exif_off: int, ifd1_off: int, thumb_off: int):
        ifd0, d0 = _ifd([(0x010F, ASCII, make), (0x0110, ASCII, model), (0x8769, LONG, exif_off)], 8, ifd1_off)
        ex_entries = [(0x9003, ASCII, dto)]
        if width and height:
            ex_entries += [(0xA002, LONG, width), (0xA003, LONG, height)]
        exifd, de = _ifd(ex_entries, exif_off, 0)
        ifd1, d1 = _ifd([(0x0103, SHORT, 6), (0x0201, LONG, thumb_off), (0x0202, LONG, len(thumb_jpeg))], ifd1_off, 0)
        return ifd0 + d0, exifd + de, ifd1 + d1

    a, b, c = build(0, 0, 0)
    exif_off = 8 + len(a)
    ifd1_off = exif_off + len(b)
    thumb_off = ifd1_off + len(c)
    a, b, c = build(exif_off, ifd1_off, thumb_off)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + a + b + c + thumb_jpeg
