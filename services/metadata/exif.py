"""EXIF reading with exifread, from the TIFF structure alone.

Callers hand us the EXIF block (the TIFF header and IFDs) cut out of the container by our
own parsers, so exifread never scans a 10 MB JPEG for it. MakerNotes are skipped
(details=False): we use none of their fields and they are where most parser trouble lives.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import struct

import exifread
from exifread.core.exif_header import IfdTag
from exifread.serialize import convert_types

# exifread logs every oddity of every file at WARNING; the findings report what matters.
logging.getLogger("exifread").setLevel(logging.CRITICAL)

# Fields a camera or phone writes and web pipelines strip; any one of them means the
# file still carries "camera EXIF".
CAMERA_FIELDS = (
    "Image Make",
    "Image Model",
    "EXIF DateTimeOriginal",
    "EXIF ExposureTime",
    "EXIF FNumber",
    "EXIF ISOSpeedRatings",
    "EXIF FocalLength",
    "EXIF LensModel",
)
# Longest text we keep from any tag (a hostile file may carry megabytes in one string).
MAX_TEXT_CHARS = 256  # characters
TAG_EXIF_IFD = 0x8769
TAG_MAKER_NOTE = 0x927C
MAX_IFD_ENTRIES = 1024  # entries per IFD we walk; real IFDs have tens
# exifread's work on one block, in IFD entries walked plus array values unpacked one at a
# time (it does that for every array under 1,000 values). A camera block is a few hundred
# (exif-samples: at most 635); 5,300 entries of 999-value arrays fit in one 64 KB APP1 and
# took exifread 3.3 s, and a PNG's eXIf chunk has no such size limit (242 KB: 12.8 s). Over
# this (a few tenths of a second at most) the block is not read: ExifData.error says why.
MAX_EXIF_WORK = 65_536  # entries plus values
_ARRAY_BY_VALUE = 1000  # values: exifread unpacks shorter arrays one value at a time
_IGNORED_TAGS = frozenset({0x02BC, 0x927C, 0x9286})  # XMP, MakerNote, UserComment: skipped by details=False
_SUB_IFD_TAGS = frozenset({0x8825, 0xA005})  # GPS, Interop: dumped wherever they appear
_ASCII = 2
# TIFF field types exifread knows, by number: (bytes per value, struct code or "" if not an integer).
_TYPES = {
    1: (1, "B"),
    2: (1, ""),
    3: (2, "H"),
    4: (4, "I"),
    5: (8, ""),
    6: (1, "b"),
    7: (1, "B"),
    8: (2, "h"),
    9: (4, "i"),
    10: (8, ""),
    11: (4, ""),
    12: (8, ""),
    13: (4, "I"),
}
# exifread may raise anything on a hostile IFD (its own regression files show it).
_PARSE_ERRORS = (Exception,)


@dataclasses.dataclass(frozen=True)
class ExifData:
    make: str = ""
    model: str = ""
    software: str = ""
    datetime: str = ""
    datetime_original: str = ""
    datetime_digitized: str = ""
    exif_width: int = 0
    exif_height: int = 0
    orientation: int = 0
    gps_present: bool = False
    gps_latitude: str = ""
    gps_longitude: str = ""
    image_unique_id: str = ""
    lens_model: str = ""
    tag_count: int = 0
    camera_fields: tuple[str, ...] = ()
    thumbnail: bytes = b""
    error: str = ""  # set when exifread failed part-way; the fields read so far still stand
    # ImageUniqueID as the registry keys on it; None where exifread failed (read it alone).
    registry_unique_id: str | None = None


def clean_text(value: object) -> str:
    """EXIF ASCII as a person reads it: no trailing NULs/padding, bounded length."""
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    text = str(value).split("\x00", 1)[0]
    return " ".join(text.split())[:MAX_TEXT_CHARS]


def _text(tags: dict, key: str) -> str:
    tag = tags.get(key)
    if tag is None:
        return ""
    values = getattr(tag, "values", tag)
    if isinstance(values, (str, bytes)):
        return clean_text(values)
    if isinstance(values, list) and values and all(isinstance(v, int) for v in values):
        # Some writers store ASCII fields as BYTE/UNDEFINED arrays.
        return clean_text(bytes(v & 0xFF for v in values))
    return clean_text(getattr(tag, "printable", ""))


def _int(tags: dict, key: str) -> int:
    tag = tags.get(key)
    values = getattr(tag, "values", None)
    if isinstance(values, list) and values:
        try:
            return max(0, int(values[0]))
        except (TypeError, ValueError, ZeroDivisionError):
            return 0
    return 0


def _gps(tags: dict, key: str) -> str:
    tag = tags.get(key)
    values = getattr(tag, "values", None)
    if not isinstance(values, list) or len(values) != 3:
        return ""
    try:
        deg = float(values[0]) + float(values[1]) / 60.0 + float(values[2]) / 3600.0
    except (TypeError, ValueError, ZeroDivisionError):
        return ""
    ref = _text(tags, key + "Ref")
    if ref in ("S", "W"):
        deg = -deg
    return f"{deg:.6f}"


def _ifd_entries(tiff: bytes, endian: str, offset: int):
    """(entry offset, tag, count) of one IFD, bounds-checked."""
    if offset + 2 > len(tiff):
        return
    n = struct.unpack_from(endian + "H", tiff, offset)[0]
    for i in range(min(n, MAX_IFD_ENTRIES)):
        entry = offset + 2 + 12 * i
        if entry + 12 > len(tiff):
            return
        tag, _typ, count = struct.unpack_from(endian + "HHI", tiff, entry)
        yield entry, tag, count


def without_maker_note(tiff: bytes) -> bytes:
    """A copy whose MakerNote entry has count 0.

    We never use MakerNotes (details=False), but exifread still reads their raw bytes one
    value at a time (tens of KB on camera files: half of our per-file time). The image
    itself is untouched: this is our private copy of the EXIF block.
    """
    if tiff[:2] not in (b"II", b"MM") or len(tiff) < 8:
        return tiff
    endian = "<" if tiff[:2] == b"II" else ">"
    ifd0 = struct.unpack_from(endian + "I", tiff, 4)[0]
    exif_ifd = next((e for e in _ifd_entries(tiff, endian, ifd0) if e[1] == TAG_EXIF_IFD), None)
    if exif_ifd is None:
        return tiff
    sub = struct.unpack_from(endian + "I", tiff, exif_ifd[0] + 8)[0]
    for entry, tag, count in _ifd_entries(tiff, endian, sub):
        if tag == TAG_MAKER_NOTE and count:
            patched = bytearray(tiff)
            struct.pack_into(endian + "I", patched, entry + 4, 0)
            return bytes(patched)
    return tiff


def _u(tiff: bytes, endian: str, fmt: str, pos: int) -> int:
    """exifread's s2n: an integer at pos, 0 when it runs past the end."""
    if pos < 0 or pos + struct.calcsize(fmt) > len(tiff):
        return 0
    return struct.unpack_from(endian + fmt, tiff, pos)[0]


def _first_value(tiff: bytes, endian: str, entry: int) -> int | None:
    """The first value of an integer entry as exifread reads it (a sub-IFD pointer it then
    dumps), or None where exifread has none to follow (no values, or not integers)."""
    typ, count = _u(tiff, endian, "H", entry + 2), _u(tiff, endian, "I", entry + 4)
    size, code = _TYPES.get(typ, (0, ""))
    if not code or not 0 < count < _ARRAY_BY_VALUE:
        return None
    at = _u(tiff, endian, "I", entry + 8) if count * size > 4 else entry + 8
    return _u(tiff, endian, code, at)


def exifread_work(tiff: bytes) -> int:
    """exifread's work on tiff (see MAX_EXIF_WORK), walking the IFDs it walks: the IFD chain
    (it stops at a repeat), the EXIF IFD of IFD0, and every GPS and Interop IFD that any of
    those point at. Counting stops once past MAX_EXIF_WORK, so this costs at most that much."""
    if tiff[:2] not in (b"II", b"MM") or len(tiff) < 8:
        return 0
    endian = "<" if tiff[:2] == b"II" else ">"
    chain: list[int] = []
    seen: set[int] = set()
    ifd = _u(tiff, endian, "I", 4)
    while ifd and ifd not in seen and len(chain) <= MAX_EXIF_WORK:
        chain.append(ifd)
        seen.add(ifd)
        following = _u(tiff, endian, "I", ifd + 2 + 12 * _u(tiff, endian, "H", ifd))
        ifd = 0 if following == ifd else following
    work = len(chain)
    # (offset, follows the EXIF IFD pointer, follows GPS/Interop pointers)
    todo = [(ifd, i == 0, True) for i, ifd in enumerate(chain)]
    while todo and work <= MAX_EXIF_WORK:
        ifd, exif_parent, sub_parent = todo.pop()
        entries = _u(tiff, endian, "H", ifd)
        work += entries
        for i in range(entries):
            if work > MAX_EXIF_WORK:
                break
            entry = ifd + 2 + 12 * i
            tag, typ = _u(tiff, endian, "H", entry), _u(tiff, endian, "H", entry + 2)
            if tag in _IGNORED_TAGS or typ not in _TYPES:
                continue
            count = _u(tiff, endian, "I", entry + 4)
            if typ != _ASCII and count < _ARRAY_BY_VALUE:
                work += count
            follows = (exif_parent and tag == TAG_EXIF_IFD) or (sub_parent and tag in _SUB_IFD_TAGS)
            pointer = _first_value(tiff, endian, entry) if follows else None
            if pointer is not None:
                todo.append((pointer, False, tag == TAG_EXIF_IFD))
    return work


def process(tiff: bytes, **options) -> dict:
    """exifread's tags (details=False) from a private copy of tiff without MakerNote bytes.

    Raises ValueError without calling exifread when it would take more than MAX_EXIF_WORK;
    exifread's own errors on hostile input propagate (callers catch everything).
    """
    work = exifread_work(tiff)
    if work > MAX_EXIF_WORK:
        raise ValueError(f"EXIF block too large to read: more than {MAX_EXIF_WORK} IFD entries and array values")
    try:
        tiff = without_maker_note(tiff)
    except struct.error:
        pass  # malformed offsets: let exifread make what it can of the original
    return exifread.process_file(io.BytesIO(tiff), details=False, **options)


def read(tiff: bytes | None) -> ExifData:
    """Reads the EXIF TIFF structure; never raises on malformed input."""
    if not tiff:
        return ExifData()
    error = ""
    try:
        tags = process(tiff, extract_thumbnail=True)
    except _PARSE_ERRORS as exc:
        tags, error = {}, f"{type(exc).__name__}: {exc}"[:MAX_TEXT_CHARS]
    names = [k for k in tags if k not in ("JPEGThumbnail", "TIFFThumbnail")]
    lat = _gps(tags, "GPS GPSLatitude")
    lon = _gps(tags, "GPS GPSLongitude")
    thumb = tags.get("JPEGThumbnail") or b""
    return ExifData(
        make=_text(tags, "Image Make"),
        model=_text(tags, "Image Model"),
        software=_text(tags, "Image Software"),
        datetime=_text(tags, "Image DateTime"),
        datetime_original=_text(tags, "EXIF DateTimeOriginal"),
        datetime_digitized=_text(tags, "EXIF DateTimeDigitized"),
        exif_width=_int(tags, "EXIF ExifImageWidth"),
        exif_height=_int(tags, "EXIF ExifImageLength"),
        orientation=_int(tags, "Image Orientation"),
        gps_present=bool(lat and lon),
        gps_latitude=lat,
        gps_longitude=lon,
        image_unique_id=_text(tags, "EXIF ImageUniqueID"),
        lens_model=_text(tags, "EXIF LensModel"),
        tag_count=len(names),
        camera_fields=tuple(k.split(" ", 1)[1] for k in CAMERA_FIELDS if k in tags and _present(tags[k])),
        thumbnail=thumb if isinstance(thumb, bytes) else b"",
        error=error,
        registry_unique_id=None if error else _registry_unique_id_or_none(tags),
    )


def _registry_unique_id_or_none(tags: dict) -> str | None:
    try:
        return registry_unique_id(tags)
    except Exception:  # noqa: BLE001 - exifread's conversion on hostile values: read the ID alone
        return None


def registry_unique_id(tags: dict) -> str:
    """ImageUniqueID in the form the reuse registry keys on (fingerprints.image_unique_id):
    exifread's builtin-type value, stripped; an all-zero or blank ID (written by some
    firmware as a placeholder) identifies nothing and is dropped."""
    tag = tags.get("EXIF ImageUniqueID")
    if tag is None:
        return ""
    value = convert_types({"EXIF ImageUniqueID": tag})["EXIF ImageUniqueID"] if isinstance(tag, IfdTag) else tag
    if value is None:
        return ""
    text = str(value).strip().strip("\x00").strip()
    if not text or set(text) <= {"0", " "}:
        return ""
    return text


def _present(tag: object) -> bool:
    values = getattr(tag, "values", tag)
    if isinstance(values, str):
        return bool(clean_text(values))
    return bool(values)
