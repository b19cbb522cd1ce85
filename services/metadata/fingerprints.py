"""Fingerprints of one image: the keys the reuse registry matches on.

- ``image_unique_id``: EXIF ImageUniqueID (a camera-written ID), read from the EXIF block
  (exif.py) without decoding pixels.
- ``sha256``: of the bytes as uploaded (the same file re-sent).
- ``pixel_sha256``: the pixel identity key the registry indexes (32 bytes), so metadata-only
  edits (EXIF stripped or rewritten without re-encoding) still match and different pixels
  never do. Its definition is named by ``pixel_key_algorithm`` (services/metadata/pixel_key.py:
  BLAKE3 over a JPEG's coded image, or over the decoded RGB pixels of other formats); the
  field keeps the name of its first definition (SHA-256 over the decoded RGB8 pixels as
  stored), which is computed as ``legacy_pixel_sha256`` only while a registry migrates.
- ``perceptual``: a robust hash of the image as displayed (orientation applied), for
  near-duplicate search. The algorithm was chosen by measurement
  (bench/bench_registry_robustness.py, docs/registry.md): pHash 64 (the 8x8 lowest DCT
  frequencies of a 32x32 greyscale image against their median), computed from a JPEG
  upload's shared decode (services/metadata/decoded.py: libjpeg's Y plane, downscaled). On 366 photos and 2,562 resized, re-compressed, 5%-cropped and
  re-lit copies it kept recall 0.997 at 12 bits with 0.001% false matches among 66,795
  distinct pairs; dHash 64 needed the same threshold with 20x more false matches, and PDQ's
  16x16 DCT block is too sensitive to crops (its recall reached 0.99 only at 76/256 bits).
  PDQ (a numpy re-implementation, not bit-exact with Facebook's) and dHash are kept here for
  the benchmark.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TYPE_CHECKING

import cv2
import numpy as np

from services.common.imaging import probe, sniff_format
from services.common.structure import check_structure
from services.metadata import containers, exif, pixel_key
from services.metadata.decoded import DecodedUpload, DecodeNeeds

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
# What compute() reads from the shared decode: a grey view of at least DRAFT_SIZE (the
# pixel key of a JPEG needs no pixels).
NEEDS = DecodeNeeds(min_side=min(DRAFT_SIZE))
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 weights, as PDQ


@dataclasses.dataclass(frozen=True)
class Fingerprints:
    sha256: bytes  # 32 bytes
    pixel_sha256: bytes  # 32 bytes
    perceptual: bytes  # PHASH_BITS // 8 bytes, row-major bits, big-endian
    perceptual_algorithm: str = PERCEPTUAL_ALGORITHM
    image_unique_id: str = ""
    pixel_key_algorithm: str = pixel_key.ALGORITHM_RGB
    legacy_pixel_sha256: bytes = b""  # SHA-256 RGB8 key (32 bytes), b"" unless asked for
    # Near-copy matching keys (services/metadata/reuse): None for fingerprints made without
    # them, which match near copies by the whole-frame hash only and unverified.
    content: ContentKeys | None = dataclasses.field(default=None, compare=False, repr=False)


def image_unique_id(data: bytes) -> str:
    """EXIF ImageUniqueID, or "" (no EXIF, unreadable EXIF, or the tag absent).

    Read from the EXIF block cut out by our container parsers (exif.read: a bounded IFD
    walk, never the pixels); an all-zero or blank ID (written by some firmware as a
    placeholder) identifies nothing and is dropped.
    """
    fmt = sniff_format(data)
    if fmt is None:
        return ""
    try:
        check_structure(data, fmt)  # containers.read opens non-JPEG files with Pillow
        tiff = containers.read(data, fmt).exif
    except Exception:  # noqa: BLE001 - broken files have no readable ID
        return ""
    return unique_id_of_exif(tiff)


def unique_id_of_exif(tiff: bytes | None) -> str:
    """image_unique_id from the EXIF block (TIFF structure) already cut out of the file."""
    return exif.read(tiff).registry_unique_id


def pixel_sha256(data: bytes, max_pixels: int) -> bytes:
    """The legacy key: SHA-256 of the full-resolution RGB pixels as stored (see the module
    docstring)."""
    return pixel_key.legacy_rgb8(_upload(data, max_pixels, DecodeNeeds(full=True, colour=True)).rgb())


def pixel_identity(data: bytes, upload: DecodedUpload) -> tuple[bytes, str]:
    """(key, algorithm) of the upload: the JPEG coded-image key without touching pixels, the
    decoded RGB's otherwise (also for a JPEG without a complete coded image that still decodes)."""
    if upload.format == "jpeg":
        key = pixel_key.jpeg_coded(data, upload.structure)
        if key is not None:
            return key, pixel_key.ALGORITHM_JPEG
    return pixel_key.rgb8(upload.rgb()), pixel_key.ALGORITHM_RGB


def _upload(data: bytes, max_pixels: int, needs: DecodeNeeds) -> DecodedUpload:
    header = probe(data, max_pixels)  # format sniffing and the pixel limit, before allocating
    return DecodedUpload(data, header.format, header.width, header.height, needs)


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
    """The image as displayed (orientation applied), a colour view of at least DRAFT_SIZE."""
    upload = _upload(data, max_pixels, DecodeNeeds(colour=True, min_side=min(DRAFT_SIZE)))
    return upload.displayed(upload.colour_view(min(DRAFT_SIZE)))


def phash64_grey(grey: np.ndarray) -> bytes:
    """pHash of a grey image (uint8 or float): the same steps as phash64 after luminance."""
    small = cv2.resize(grey.astype(np.float32, copy=False), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8]
    return _pack_bits(low > np.median(low))


def hamming(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big").__xor__(int.from_bytes(b, "big")).bit_count()


def compute(
    data: bytes,
    max_pixels: int,
    sha256: bytes | None = None,
    *,
    upload: DecodedUpload | None = None,
    legacy: bool = False,
    unique_id: str | None = None,
) -> Fingerprints:
    """All fingerprints of an uploaded file. Raises InvalidImage / TooLarge like decoding.

    sha256: the bytes' digest when the caller already has it (a whole-file pass saved).
    upload: the request's shared decode (its needs must include NEEDS); made here when absent.
    legacy: also the SHA-256 RGB8 key (a full colour decode: declare colour and full needs).
    unique_id: the ImageUniqueID the analysis read (exif.ExifData.registry_unique_id), so
    EXIF is not parsed twice; None: read from `data`.
    """
    if upload is None:
        upload = _upload(data, max_pixels, NEEDS | DecodeNeeds(full=legacy, colour=legacy))
    # reuse.content hashes views with phash64 from this module: imported here, not at the top.
    from services.metadata.reuse.content import describe

    shown = upload.displayed(upload.grey_view(min(DRAFT_SIZE)))  # raises if undecodable
    perceptual = phash64_grey(shown)
    key, algorithm = pixel_identity(data, upload)
    return Fingerprints(
        sha256=sha256 if sha256 is not None else hashlib.sha256(data).digest(),
        pixel_sha256=key,
        perceptual=perceptual,
        image_unique_id=image_unique_id(data) if unique_id is None else unique_id,
        pixel_key_algorithm=algorithm,
        legacy_pixel_sha256=pixel_key.legacy_rgb8(upload.rgb()) if legacy else b"",
        content=describe(
            np.ascontiguousarray(shown)
        ),  # near-copy keys from the same decoded view (OpenCV wants contiguous)
    )


__all__ = [
    "NEEDS",
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
    "phash64_grey",
    "pixel_identity",
    "pixel_sha256",
]
