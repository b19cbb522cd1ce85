"""Fingerprints on real photos: which edits each key survives."""

from __future__ import annotations

import io

from PIL import Image

from services.metadata import fingerprints as fp

MAX_PIXELS = 120_000_000  # pixels


def _strip_app1(data: bytes) -> bytes:
    """Drops the EXIF APP1 segments without touching the compressed image data."""
    out, pos = bytearray(data[:2]), 2
    while pos < len(data) and data[pos] == 0xFF and data[pos + 1] not in (0xDA,):
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if data[pos + 1] != 0xE1:
            out += data[pos : pos + 2 + length]
        pos += 2 + length
    return bytes(out + data[pos:])


def test_unique_id_is_read_from_exif(exif_samples):
    data = (exif_samples / "jpg" / "Olympus_C8080WZ.jpg").read_bytes()
    assert fp.image_unique_id(data) == "77c6274bd589ad50395891e84a8b673b"
    assert fp.compute(data, MAX_PIXELS).image_unique_id == "77c6274bd589ad50395891e84a8b673b"
    assert fp.image_unique_id(b"not an image") == ""


def test_pixel_hash_survives_exif_stripping_but_bytes_hash_does_not(exif_samples):
    data = (exif_samples / "jpg" / "Nikon_D70.jpg").read_bytes()
    stripped = _strip_app1(data)
    assert stripped != data and b"Exif" not in stripped[:2000]
    a, b = fp.compute(data, MAX_PIXELS), fp.compute(stripped, MAX_PIXELS)
    assert a.sha256 != b.sha256
    assert a.pixel_sha256 == b.pixel_sha256
    assert a.image_unique_id == "" or b.image_unique_id == ""


def test_pixel_hash_definition(bsds):
    data = sorted((bsds / "val" / "images").glob("*.jpg"))[0].read_bytes()
    img = Image.open(io.BytesIO(data)).convert("RGB")
    import hashlib
    import struct

    expected = hashlib.sha256(b"RGB8" + struct.pack(">II", img.width, img.height) + img.tobytes()).digest()
    assert fp.pixel_sha256(data, MAX_PIXELS) == expected


def test_perceptual_hash_is_near_for_a_resized_recompressed_copy_and_far_for_another_photo(bsds):
    paths = sorted((bsds / "val" / "images").glob("*.jpg"))
    original = paths[2].read_bytes()
    img = Image.open(io.BytesIO(original))
    out = io.BytesIO()
    img.resize((round(img.width * 0.8), round(img.height * 0.8))).save(out, "JPEG", quality=65)
    h0 = fp.compute(original, MAX_PIXELS).perceptual
    assert len(h0) == 8
    assert fp.hamming(h0, fp.compute(out.getvalue(), MAX_PIXELS).perceptual) <= 12
    assert fp.hamming(h0, fp.compute(paths[3].read_bytes(), MAX_PIXELS).perceptual) > 12
