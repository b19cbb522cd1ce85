"""Fingerprints of one image: the keys the reuse registry matches on.

- ``image_unique_id``: EXIF ImageUniqueID (a camera-written ID), read with exifread without
  decoding pixels.
- ``sha256``: of the bytes as uploaded (the same file re-sent).
- ``pixel_sha256``: of the decoded pixels, so metadata-only edits (EXIF stripped or
  rewritten without re-encoding) still match. Defined precisely as SHA-256 over
  ``b"RGB8" + width (4 bytes big-endian) + height (4 bytes big-endian) + the row-major 8-bit
  RGB samples`` of the full-resolution image *as stored*, i.e. BEFORE the EXIF orientation
  is applied: orientation is metadata, and stripping EXIF drops it, so a hash taken after
  rotation would change under exactly the edit this key exists to survive.
- ``perceptual``: a robust hash of the image as displayed (orientation applied), for
  near-duplicate search. The algorithm was chosen by measurement
  (bench/bench_registry_robustness.py, docs/registry.md): pHash 64 (the 8x8 lowest DCT
  frequencies of a 32x32 greyscale image against their median), computed from a JPEG
  DCT-scaled draft decode. On 366 photos and 2,562 resized, re-compressed, 5%-cropped and
  re-lit copies it kept recall 0.997 at 12 bits with 0.001% false matches among 66,795
  distinct pairs; dHash 64 needed the same threshold with 20x more false matches, and PDQ's
  16x16 DCT block is too sensitive to crops (its recall reached 0.99 only at 76/256 bits).
  PDQ (a numpy re-implementation, not bit-exact with Facebook's) and dHash are kept here for
  the benchmark.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from services.common.errors import InvalidImage
from services.common.imaging import decode_rgb, probe, sniff_format, to_rgb
from services.common.structure import check_structure
from services.metadata import containers, exif, jpeg

if TYPE_CHECKING:
    from services.metadata.reuse.content import ContentKeys

# 64x64: PDQ's working resolution; the JPEG draft decode is asked for at least 4x that
# (DCT scaling picks the smallest of 1/1, 1/2, 1/4, 1/8 that stays above it), so the box
# filter still averages real detail rather than decoder-smoothed pixels.
PDQ_SIZE = 64  # pixels
DRAFT_SIZE = (256, 256)  # pixels, lower bound of the draft-decoded size
PDQ_BITS = 256  # bits
PHASH_BITS = 64  # bits
PERCEPTUAL_ALGORITHM = "phash64"
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 weights, as PDQ


@dataclasses.dataclass(frozen=True)
class Fingerprints:
    sha256: bytes  # 32 bytes
    pixel_sha256: bytes  # 32 bytes
    perceptual: bytes  # PHASH_BITS // 8 bytes, row-major bits, big-endian
    perceptual_algorithm: str = PERCEPTUAL_ALGORITHM
    image_unique_id: str = ""
    # Near-copy matching keys (services/metadata/reuse): None for fingerprints made without
    # them, which match near copies by the whole-frame hash only and unverified.
    content: ContentKeys | None = dataclasses.field(default=None, compare=False, repr=False)


def image_unique_id(data: bytes) -> str:
    """EXIF ImageUniqueID, or "" (no EXIF, unreadable EXIF, or the tag absent).

    exifread reads the EXIF block cut out by our container parsers, within the analysis'
    work bound (exif.process; given the whole file, it read a hostile 64 KB block for 3 s),
    stops at the tag and never decodes pixels; an all-zero or blank ID (written by some
    firmware as a placeholder) identifies nothing and is dropped.
    """
    fmt = sniff_format(data)
    if fmt is None:
        return ""
    try:
        check_structure(data, fmt)  # containers.read opens non-JPEG files with Pillow
        tiff = containers.read(data, fmt).exif
        tags = exif.process(tiff, stop_tag="ImageUniqueID", builtin_types=True) if tiff else {}
    except Exception:  # noqa: BLE001 - exifread raises anything on broken files; the ID is optional
        return ""
    value = tags.get("EXIF ImageUniqueID")
    if value is None:
        return ""
    text = str(value).strip().strip("\x00").strip()
    if not text or set(text) <= {"0", " "}:
        return ""
    return text


def pixel_sha256(data: bytes, max_pixels: int) -> bytes:
    """SHA-256 of the full-resolution RGB pixels as stored (see the module docstring)."""
    probe(data, max_pixels)  # format sniffing and the pixel limit, before allocating
    rgb = _fast_jpeg_rgb(data)
    if rgb is not None:
        return _digest(rgb.shape[1], rgb.shape[0], rgb)
    return _pixel_sha256_pillow(data)


def _digest(width: int, height: int, rgb) -> bytes:
    digest = hashlib.sha256(b"RGB8" + struct.pack(">II", width, height))
    digest.update(rgb)
    return digest.digest()


def _pixel_sha256_pillow(data: bytes) -> bytes:
    """The reference definition: Pillow's decode, converted to RGB."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = to_rgb(img)
    except InvalidImage:
        raise
    except Exception as exc:
        if isinstance(exc, MemoryError):
            raise
        raise InvalidImage(f"cannot decode the image (truncated or corrupt?): {type(exc).__name__}: {exc}") from exc
    return _digest(rgb.width, rgb.height, rgb.tobytes())


def _fast_jpeg_rgb(data: bytes) -> np.ndarray | None:
    """The same pixels as the Pillow path for the common JPEG (8-bit, 3-component YCbCr, whole
    file), decoded by OpenCV straight into an array: a 12 MP photo costs ~99 ms instead of ~150
    (no copy out of Pillow's image memory). Both use libjpeg-turbo with the same defaults;
    tests/registry/test_fingerprints.py checks the digests agree on every JPEG of ../shared.
    None (use Pillow) for anything else: a file without EOI, which Pillow refuses as truncated
    while OpenCV would fill it in; grey, CMYK/YCCK or Adobe-transformed files; 12-bit."""
    if data[:2] != b"\xff\xd8":
        return None
    structure = jpeg.parse(data)
    frame = structure.frame
    if (structure.truncated or structure.eoi_offset < 0 or structure.adobe_app14 or frame is None
            or frame.precision != 8 or len(frame.components) != 3):
        return None
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape[:2] != (frame.height, frame.width):
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ _LUMA


def _pack_bits(bits: np.ndarray) -> bytes:
    return np.packbits(bits.astype(np.uint8).ravel()).tobytes()


def _jarosz_window(old: int, new: int) -> int:
    # PDQ's window: ceil(old / (2 * new)), so two passes of a box this wide approximate a
    # tent filter spanning one output pixel.
    return max(1, (old + 2 * new - 1) // (2 * new))


def _dct_matrix(n_out: int, n_in: int, skip_dc: bool) -> np.ndarray:
    first = 1 if skip_dc else 0
    i = np.arange(first, first + n_out, dtype=np.float64)[:, None]
    j = np.arange(n_in, dtype=np.float64)[None, :]
    return (np.sqrt(2.0 / n_in) * np.cos(np.pi / (2 * n_in) * i * (2 * j + 1))).astype(np.float32)


_PDQ_DCT = _dct_matrix(16, PDQ_SIZE, skip_dc=True)  # 16x64: PDQ drops the DC row


def pdq_hash(rgb: np.ndarray) -> bytes:
    """PDQ 256-bit hash (Facebook ThreatExchange's algorithm, in numpy/OpenCV).

    Luminance, two passes of a Jarosz box filter and decimation to 64x64, the 16x16
    low-frequency DCT block without the DC row/column, each bit = coefficient > median.
    """
    y = _luma(rgb)
    h, w = y.shape
    wy, wx = _jarosz_window(h, PDQ_SIZE), _jarosz_window(w, PDQ_SIZE)
    for _ in range(2):  # PDQ_NUM_JAROSZ_XY_PASSES
        y = cv2.blur(y, (wx, wy), borderType=cv2.BORDER_REPLICATE)
    rows = ((np.arange(PDQ_SIZE) + 0.5) * h / PDQ_SIZE).astype(int)
    cols = ((np.arange(PDQ_SIZE) + 0.5) * w / PDQ_SIZE).astype(int)
    small = y[np.ix_(rows, cols)]
    coeffs = _PDQ_DCT @ small @ _PDQ_DCT.T
    return _pack_bits(coeffs > np.median(coeffs))


def phash64(rgb: np.ndarray) -> bytes:
    """pHash: 32x32 greyscale, DCT, the 8x8 lowest frequencies against their median."""
    small = cv2.resize(_luma(rgb), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8]
    return _pack_bits(low > np.median(low))


def dhash64(rgb: np.ndarray) -> bytes:
    """dHash: 9x8 greyscale, each bit = this pixel brighter than its right neighbour."""
    small = cv2.resize(_luma(rgb), (9, 8), interpolation=cv2.INTER_AREA)
    return _pack_bits(small[:, 1:] > small[:, :-1])


PERCEPTUAL_HASHES = {"pdq256": pdq_hash, "phash64": phash64, "dhash64": dhash64}


def display_pixels(data: bytes, max_pixels: int) -> np.ndarray:
    """The image as displayed (orientation applied), draft-decoded small for hashing."""
    return np.asarray(decode_rgb(data, max_pixels, draft_size=DRAFT_SIZE))


def hamming(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big").__xor__(int.from_bytes(b, "big")).bit_count()


def compute(data: bytes, max_pixels: int, sha256: bytes | None = None) -> Fingerprints:
    """All fingerprints of an uploaded file. Raises InvalidImage / TooLarge like decoding.

    sha256: the bytes' digest when the caller already has it (a whole-file pass saved).
    """
    # reuse.content hashes views with phash64 from this module: imported here, not at the top.
    from services.metadata.reuse.content import describe

    shown = display_pixels(data, max_pixels)
    return Fingerprints(
        sha256=sha256 if sha256 is not None else hashlib.sha256(data).digest(),
        pixel_sha256=pixel_sha256(data, max_pixels),
        perceptual=phash64(shown),
        image_unique_id=image_unique_id(data),
        content=describe(shown),  # near-copy keys from the same decoded pixels
    )


__all__ = [
    "PERCEPTUAL_ALGORITHM",
    "PERCEPTUAL_HASHES",
    "Fingerprints",
    "compute",
    "dhash64",
    "display_pixels",
    "hamming",
    "image_unique_id",
    "pdq_hash",
    "phash64",
    "pixel_sha256",
]
