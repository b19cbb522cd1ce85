"""The EXIF fields the rules use, read from the TIFF structure alone.

Callers hand us the EXIF block (the TIFF header and IFDs) cut out of the container by our
own parsers. tiff_ifd.py walks its IFDs and decodes only the ~20 tags below, reading them
as exifread 3.5.1 did (details=False: MakerNotes skipped): the fields, the tag count and
the registry's ImageUniqueID key are those of exifread on every well-formed block, at about
a tenth of its cost (tests/metadata/test_tiff_ifd.py, docs/metadata.md).
"""

from __future__ import annotations

import dataclasses

from services.metadata import tiff_ifd
from services.metadata.tiff_ifd import EXIF, GPS, IFD0, Tag

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
# Every tag read, by exifread's name ("IFD name" + " " + tag name): (IFD name, tag id).
TAGS = {
    "Image Make": (IFD0, 0x010F),
    "Image Model": (IFD0, 0x0110),
    "Image Orientation": (IFD0, 0x0112),
    "Image Software": (IFD0, 0x0131),
    "Image DateTime": (IFD0, 0x0132),
    "EXIF ExposureTime": (EXIF, 0x829A),
    "EXIF FNumber": (EXIF, 0x829D),
    "EXIF ISOSpeedRatings": (EXIF, 0x8827),
    "EXIF DateTimeOriginal": (EXIF, 0x9003),
    "EXIF DateTimeDigitized": (EXIF, 0x9004),
    "EXIF FocalLength": (EXIF, 0x920A),
    "EXIF ExifImageWidth": (EXIF, 0xA002),
    "EXIF ExifImageLength": (EXIF, 0xA003),
    "EXIF ImageUniqueID": (EXIF, 0xA420),
    "EXIF LensModel": (EXIF, 0xA434),
    "GPS GPSLatitudeRef": (GPS, 0x0001),
    "GPS GPSLatitude": (GPS, 0x0002),
    "GPS GPSLongitudeRef": (GPS, 0x0003),
    "GPS GPSLongitude": (GPS, 0x0004),
}
_NAMES = {key: name for name, key in TAGS.items()}
_WANTED = frozenset(TAGS.values())
# Longest text we keep from any tag (a hostile file may carry megabytes in one string).
MAX_TEXT_CHARS = 256  # characters


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
    error: str = ""  # why the block was not read (over the walk's bound); then every field is empty
    # ImageUniqueID as the reuse registry keys on it (registry_unique_id).
    registry_unique_id: str = ""


def clean_text(value: object) -> str:
    """EXIF ASCII as a person reads it: no trailing NULs/padding, bounded length."""
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    text = str(value).split("\x00", 1)[0]
    return " ".join(text.split())[:MAX_TEXT_CHARS]


def _text(tags: dict[str, Tag], key: str) -> str:
    tag = tags.get(key)
    if tag is None:
        return ""
    values = tag.values
    if isinstance(values, (str, bytes)):
        return clean_text(values)
    if values and all(isinstance(v, int) for v in values):
        # Some writers store ASCII fields as BYTE/UNDEFINED arrays.
        return clean_text(bytes(v & 0xFF for v in values))
    return clean_text(tag.printable)


def _int(tags: dict[str, Tag], key: str) -> int:
    tag = tags.get(key)
    values = tag.values if tag is not None else None
    if isinstance(values, list) and values:
        try:
            return max(0, int(values[0]))
        except (TypeError, ValueError, ZeroDivisionError):
            return 0
    return 0


def _gps(tags: dict[str, Tag], key: str) -> str:
    tag = tags.get(key)
    values = tag.values if tag is not None else None
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


def _present(tag: Tag) -> bool:
    values = tag.values
    if isinstance(values, str):
        return bool(clean_text(values))
    return bool(values)


def read(tiff: bytes | None) -> ExifData:
    """Reads the EXIF TIFF structure; never raises on malformed input."""
    if not tiff:
        return ExifData()
    try:
        walk = tiff_ifd.walk(tiff, _WANTED)
    except tiff_ifd.TooMuchWork as exc:
        return ExifData(error=str(exc)[:MAX_TEXT_CHARS])
    tags = {_NAMES[key]: tag for key, tag in walk.tags.items()}
    lat = _gps(tags, "GPS GPSLatitude")
    lon = _gps(tags, "GPS GPSLongitude")
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
        tag_count=walk.tag_count,
        camera_fields=tuple(k.split(" ", 1)[1] for k in CAMERA_FIELDS if k in tags and _present(tags[k])),
        thumbnail=walk.jpeg_thumbnail or b"",
        registry_unique_id=registry_unique_id(tags.get("EXIF ImageUniqueID")),
    )


def registry_unique_id(tag: Tag | None) -> str:
    """ImageUniqueID in the form the reuse registry keys on (fingerprints.image_unique_id):
    the tag's value as exifread's builtin-type conversion gives it, as text, stripped; an
    all-zero or blank ID (written by some firmware as a placeholder) identifies nothing and
    is dropped. Registered IDs were keyed this way, so the conversion must not change."""
    if tag is None:
        return ""
    try:
        value = _builtin(tag)
    except ValueError:  # byte values over 255 (an IFD-typed ID): exifread's conversion failed too
        return ""
    if value is None:
        return ""
    text = str(value).strip().strip("\x00").strip()
    if not text or set(text) <= {"0", " "}:
        return ""
    return text


def _builtin(tag: Tag) -> object:
    """exifread.serialize.convert_types for one tag without a value table, by field type."""
    values = tag.values
    if isinstance(values, (str, bytes)):  # ASCII
        out = values.strip()
        if not out:
            return None
        if isinstance(out, bytes):
            try:
                return out.decode()
            except UnicodeDecodeError:
                return out
        return out
    if tag.type in (1, 7, 13):  # BYTE, UNDEFINED, IFD: a text in bytes, or one number
        if len(values) == 1:
            return values[0]
        raw = bytes(values).strip(b" \x00")
        if not raw:
            return None
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return raw
    if tag.type in (5, 10):  # RATIONAL, SRATIONAL
        out_list = []
        for ratio in values:
            number = float(ratio.numerator if ratio.denominator == 0 else ratio)
            out_list.append(int(number) if number.is_integer() else number)
        if not out_list:
            return None
        return out_list[0] if len(out_list) == 1 else out_list
    if not values:  # the other numbers
        return None
    return values[0] if len(values) == 1 else values
