"""The pixel identity key: equal for metadata-only edits, different whenever the pixels differ.

Two definitions, named by ``ALGORITHM`` so a registry can tell them apart:

- JPEG (``blake3-jpeg-coded``): BLAKE3 over the file's *coded image*: every byte from SOI
  to the first EOI that a decoder reads to produce pixels (frame header, quantisation and
  Huffman tables, restart interval, scan headers and entropy-coded data, fill bytes, the
  Adobe APP14 colour transform), leaving out APP0-APP13, APP15 and COM segments and any
  bytes after EOI. Those segments carry metadata only; libjpeg's one use of APP0 (JFIF
  forces YCbCr where the component ids spell "RGB") enters the key as one flag byte. The
  same coded bytes decode to the same pixels, so different pixels never share a key;
  stripping or rewriting EXIF, XMP, ICC, IPTC or comments (exiftool, most upload
  pipelines) keeps it. It needs no decode at all: ~2 ms for a 4 MB 12 MP photo.
  Missed: a *lossless transcode* that re-codes the same coefficients (``jpegtran
  -optimize``, ``-progressive``, ``-restart``, arithmetic coding) gets another key although
  its pixels are equal; so does the same picture in another container (a PNG of the JPEG's
  pixels). Both still match as near duplicates on the perceptual hash (distance 0-2).
- Other formats (``blake3-rgb8``): BLAKE3 over ``b"RGB8" + width + height (4 bytes
  big-endian each) + the row-major 8-bit RGB samples`` as stored (before EXIF orientation).

BLAKE3 rather than SHA-256 or xxh3 (measured, bench/bench_metadata.py): it is a
cryptographic hash (a registered key decides a HIGH "reused by another seller" finding, so
second preimages must be out of reach, which rules xxh3 out), ~1.2-2x faster than SHA-256
on one core here and it spreads large inputs over threads, releasing the GIL.

The key the registry held before (``LEGACY_ALGORITHM``, SHA-256 over the RGB8 input above
for every format) costs a full colour decode plus a 36 MB hash per 12 MP photo; it is
computed only while a deployment migrates its registry (docs/metadata.md, "Pixel identity key").
"""

from __future__ import annotations

import hashlib
import struct

import blake3
import numpy as np

from services.metadata import jpeg
from services.metadata.jpeg import JpegStructure

ALGORITHM_JPEG = "blake3-jpeg-coded"
ALGORITHM_RGB = "blake3-rgb8"
LEGACY_ALGORITHM = "sha256-rgb8"
# Inputs from this size are hashed on BLAKE3's threads (decoded pixels); a coded JPEG
# stream is hashed on the calling thread, where the thread start would cost more.
THREADED_MIN_BYTES = 8 << 20  # bytes
_RGB_IDS = (0x52, 0x47, 0x42)  # component ids "R", "G", "B"
_JPEG_DOMAIN = b"JPGC"  # domain tags: a JPEG key can never equal an RGB one
_RGB_DOMAIN = b"RGB8"


def jpeg_coded(data: bytes, structure: JpegStructure | None = None) -> bytes | None:
    """The JPEG key (32 bytes), or None when the file has no complete SOI...EOI coded image
    (a truncated file: it has no pixels to identify). structure: the file's marker parse
    (jpeg.parse) when the caller has it; the key is defined by that walk either way."""
    if data[:2] != b"\xff\xd8":
        return None
    structure = structure if structure is not None else jpeg.parse(data)
    if structure.truncated or structure.eoi_offset < 0:
        return None
    view = memoryview(data)
    digest = blake3.blake3(_JPEG_DOMAIN)
    start = 0
    for span_start, span_end in structure.metadata_spans:
        digest.update(view[start:span_start])
        start = span_end
    digest.update(view[start : structure.eoi_offset])
    ids = tuple(c.id for c in structure.frame.components) if structure.frame is not None else ()
    digest.update(bytes([structure.jfif and ids == _RGB_IDS]))
    return digest.digest()


def rgb8(rgb: np.ndarray) -> bytes:
    """The key of decoded pixels (H, W, 3) uint8, as stored."""
    return _rgb_input_hash(blake3.blake3, rgb)


def legacy_rgb8(rgb: np.ndarray) -> bytes:
    """SHA-256 over the RGB8 input: the legacy key (sha256-rgb8) a registry may still hold."""
    return _rgb_input_hash(hashlib.sha256, rgb)


def _rgb_input_hash(make, rgb: np.ndarray) -> bytes:
    height, width = rgb.shape[:2]
    header = _RGB_DOMAIN + struct.pack(">II", width, height)
    pixels = np.ascontiguousarray(rgb)
    if make is blake3.blake3:
        threads = blake3.blake3.AUTO if pixels.nbytes >= THREADED_MIN_BYTES else 1
        digest = blake3.blake3(header, max_threads=threads)
    else:
        digest = make(header)
    digest.update(pixels.data)
    return digest.digest()
