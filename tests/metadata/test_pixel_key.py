"""The pixel identity key: which edits keep it, which change it, and its definitions."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess

import blake3
import numpy as np
from PIL import Image

from services.metadata import fingerprints, pixel_key
from services.metadata.jpeg import parse
from tests.helpers.paths import require_tool

MAX_PIXELS = 120_000_000  # pixels


def _segments_without(data: bytes, codes: set[int]) -> bytes:
    """The file without the header segments whose marker code is in `codes`."""
    out, pos = bytearray(data[:2]), 2
    while data[pos] == 0xFF and data[pos + 1] != 0xDA:
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if data[pos + 1] not in codes:
            out += data[pos : pos + 2 + length]
        pos += 2 + length
    return bytes(out + data[pos:])


def _segment_at(data: bytes, code: int) -> int:
    """Offset of the first header segment with this marker code (not one inside APP1's thumbnail)."""
    pos = 2
    while data[pos + 1] != code:
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return pos


def _with_comment(data: bytes, text: bytes) -> bytes:
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]


def test_metadata_only_edits_keep_the_key(exif_samples, tmp_path):
    data = (exif_samples / "jpg" / "Canon_40D.jpg").read_bytes()
    key = pixel_key.jpeg_coded(data)
    assert key is not None and len(key) == 32
    app_codes = set(range(0xE0, 0xF0)) - {0xEE}
    edits = {
        "exif stripped": _segments_without(data, {0xE1}),
        "every APPn but APP14 stripped": _segments_without(data, app_codes),
        "comment added": _with_comment(data, b"listed on 2026-12-01"),
        "bytes after EOI": data + b"\x00trailer" * 10,
    }
    exiftool = require_tool("exiftool", "apt-get install libimage-exiftool-perl")
    edited = tmp_path / "edited.jpg"
    edited.write_bytes(data)
    subprocess.run(
        [
            exiftool,
            "-q",
            "-overwrite_original",
            "-Make=Other",
            "-DateTimeOriginal=2020:01:01 00:00:00",
            "-XMP:CreatorTool=editor",
            str(edited),
        ],
        check=True,
    )
    edits["exiftool rewrite"] = edited.read_bytes()
    for name, edit in edits.items():
        assert edit != data, name
        assert pixel_key.jpeg_coded(edit) == key, name
        assert fingerprints.compute(edit, MAX_PIXELS).pixel_sha256 == key, name


def test_any_change_to_what_the_decoder_reads_changes_the_key(exif_samples):
    data = (exif_samples / "jpg" / "Canon_40D.jpg").read_bytes()
    key = pixel_key.jpeg_coded(data)
    structure = parse(data)
    dqt, scan = _segment_at(data, 0xDB), _segment_at(data, 0xDA)
    scan_data = scan + 2 + int.from_bytes(data[scan + 2 : scan + 4], "big")
    changed = {
        "one quantiser": data[: dqt + 10] + bytes([data[dqt + 10] ^ 1]) + data[dqt + 11 :],
        "one entropy-coded byte": data[: scan_data + 500]
        + bytes([data[scan_data + 500] ^ 0x10])
        + data[scan_data + 501 :],
    }
    for name, edit in changed.items():
        assert pixel_key.jpeg_coded(edit) != key, name
    assert structure.eoi_offset > 0
    assert pixel_key.jpeg_coded(data[: structure.eoi_offset - 2]) is None  # no EOI: no complete coded image


def test_jfif_enters_the_key_only_where_it_changes_the_colours():
    """libjpeg reads 3 components with ids R, G, B as RGB unless a JFIF APP0 says YCbCr."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 90)).save(out, "JPEG", quality=90)
    ycc = out.getvalue()
    assert pixel_key.jpeg_coded(ycc) == pixel_key.jpeg_coded(_segments_without(ycc, {0xE0}))
    sof = ycc.index(b"\xff\xc0")
    rgb_ids = bytearray(ycc)
    for i, ident in enumerate(b"RGB"):
        rgb_ids[sof + 10 + 3 * i] = ident
    rgb_ids = bytes(rgb_ids)
    assert pixel_key.jpeg_coded(rgb_ids) != pixel_key.jpeg_coded(_segments_without(rgb_ids, {0xE0}))


def test_other_formats_hash_their_rgb8_pixels(exif_samples):
    data = next((exif_samples / "tiff").glob("*.tif*")).read_bytes()
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    header = b"RGB8" + struct.pack(">II", rgb.shape[1], rgb.shape[0])
    fp = fingerprints.compute(data, MAX_PIXELS)
    assert fp.pixel_key_algorithm == pixel_key.ALGORITHM_RGB
    assert fp.pixel_sha256 == blake3.blake3(header + rgb.tobytes()).digest()


def test_legacy_key_is_the_sha256_of_the_rgb8_pixels(bsds):
    """The legacy key, bit for bit as registries hold it."""
    data = min((bsds / "val" / "images").glob("*.jpg")).read_bytes()
    img = Image.open(io.BytesIO(data)).convert("RGB")
    expected = hashlib.sha256(b"RGB8" + struct.pack(">II", img.width, img.height) + img.tobytes()).digest()
    assert fingerprints.pixel_sha256(data, MAX_PIXELS) == expected
    assert fingerprints.compute(data, MAX_PIXELS, legacy=True).legacy_pixel_sha256 == expected
    assert fingerprints.compute(data, MAX_PIXELS).legacy_pixel_sha256 == b""
