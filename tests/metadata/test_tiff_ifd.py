"""Our IFD walk (tiff_ifd.py, through exif.read) against exifread 3.5.1, the reader it
replaces: the same fields, tag count, thumbnail and registry ImageUniqueID key on every
EXIF block of the corpora, on thousands of mutants of real blocks, and on each field type an
ImageUniqueID can be stored as. Where exifread gives up on a whole block (it raises), the
walk reads the well-formed entries instead: a documented difference, so those mutants are
only required to read without error and within the walk's bound.
"""

from __future__ import annotations

import io
import logging
import random
import struct

import exifread
import pytest
from exifread.serialize import convert_types

from services.common.imaging import sniff_format
from services.metadata import containers, exif, tiff_ifd
from tests.helpers.paths import SHARED, require_dataset
from tests.metadata.corpus import corpus_files

# exifread logs every oddity of every mutant at WARNING.
logging.getLogger("exifread").setLevel(logging.CRITICAL)

SEED = 17
TYPES = range(0, 15)  # every TIFF field type, the unknown 0 and 14 included
COUNTS = (0, 1, 2, 3, 4, 5, 21, 51, 999, 1000, 0xFFFFFFFF)  # values: around exifread's special cases
FLIPS_PER_BLOCK = 60  # random byte-flip mutants per real block
OTHER_ENTRIES = 12  # entries mutated per block besides those of the tags read and the pointers
# Real blocks mutated: little- and big-endian, with GPS, a thumbnail, an ImageUniqueID.
MUTATED = (
    "exif-samples/jpg/Canon_40D.jpg",
    "exif-samples/jpg/gps/DSCN0010.jpg",
    "exif-samples/jpg/Nikon_D70.jpg",
    "exif-samples/jpg/mobile/HMD_Nokia_8.3_5G.jpg",
    "exif-samples/tiff/Arbitro.tiff",
)


def exifread_reading(tiff: bytes) -> exif.ExifData:
    """ExifData as exif.read made it with exifread (details=False). Raises where exifread does."""
    tags = exifread.process_file(io.BytesIO(tiff), details=False)
    names = [k for k in tags if k not in ("JPEGThumbnail", "TIFFThumbnail")]
    lat, lon = exif._gps(tags, "GPS GPSLatitude"), exif._gps(tags, "GPS GPSLongitude")
    thumb = tags.get("JPEGThumbnail") or b""
    return exif.ExifData(
        make=exif._text(tags, "Image Make"),
        model=exif._text(tags, "Image Model"),
        software=exif._text(tags, "Image Software"),
        datetime=exif._text(tags, "Image DateTime"),
        datetime_original=exif._text(tags, "EXIF DateTimeOriginal"),
        datetime_digitized=exif._text(tags, "EXIF DateTimeDigitized"),
        exif_width=exif._int(tags, "EXIF ExifImageWidth"),
        exif_height=exif._int(tags, "EXIF ExifImageLength"),
        orientation=exif._int(tags, "Image Orientation"),
        gps_present=bool(lat and lon),
        gps_latitude=lat,
        gps_longitude=lon,
        image_unique_id=exif._text(tags, "EXIF ImageUniqueID"),
        lens_model=exif._text(tags, "EXIF LensModel"),
        tag_count=len(names),
        camera_fields=tuple(k.split(" ", 1)[1] for k in exif.CAMERA_FIELDS if k in tags and exif._present(tags[k])),
        thumbnail=thumb if isinstance(thumb, bytes) else b"",
        registry_unique_id=_exifread_unique_id(tags),
    )


def _exifread_unique_id(tags: dict) -> str:
    """The registry's ImageUniqueID key as it was made from exifread's tags."""
    tag = tags.get("EXIF ImageUniqueID")
    if tag is None:
        return ""
    try:
        value = convert_types({"EXIF ImageUniqueID": tag})["EXIF ImageUniqueID"]
    except Exception:  # noqa: BLE001 - exifread's conversion failed: the key was ""
        return ""
    text = "" if value is None else str(value).strip().strip("\x00").strip()
    return "" if not text or set(text) <= {"0", " "} else text


def _block(path) -> bytes | None:
    data = path.read_bytes()
    fmt = sniff_format(data)
    try:
        return containers.read(data, fmt).exif if fmt else None
    except Exception:  # noqa: BLE001 - a file whose container cannot be read has no block
        return None


def _corpus_blocks() -> list[tuple[str, bytes]]:
    out = []
    for name in ("exif-samples", "camera-photos"):
        root = require_dataset(SHARED / name)
        for path in corpus_files(root):
            block = _block(path)
            if block:
                out.append((path.relative_to(SHARED).as_posix(), block))
    return out


@pytest.mark.slow
def test_every_corpus_block_reads_as_exifread_read_it():
    blocks = _corpus_blocks()
    assert len(blocks) >= 150
    assert sum(exif.read(b).tag_count > 0 for _, b in blocks) >= 140
    for name, block in blocks:
        assert exif.read(block) == exifread_reading(block), name


def _entries(tiff: bytes) -> list[int]:
    """Offsets of the entries of every IFD exifread walks (via our walker's own pointers)."""
    endian = "<" if tiff[:1] == b"I" else ">"
    out, todo, seen = [], [struct.unpack_from(endian + "I", tiff, 4)[0]], set()
    while todo:
        ifd = todo.pop()
        if ifd in seen or ifd + 2 > len(tiff):
            continue
        seen.add(ifd)
        n = struct.unpack_from(endian + "H", tiff, ifd)[0]
        for i in range(n):
            entry = ifd + 2 + 12 * i
            if entry + 12 > len(tiff):
                break
            out.append(entry)
            tag, typ = struct.unpack_from(endian + "HH", tiff, entry)
            if tag in (0x8769, 0x8825, 0xA005) and typ == 4:
                todo.append(struct.unpack_from(endian + "I", tiff, entry + 8)[0])
        following = ifd + 2 + 12 * n
        if following + 4 <= len(tiff):
            todo.append(struct.unpack_from(endian + "I", tiff, following)[0])
    return out


def _mutants(tiff: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    endian = "<" if tiff[:1] == b"I" else ">"
    out = []

    def patched(fmt: str, at: int, value: int) -> bytes:
        b = bytearray(tiff)
        struct.pack_into(endian + fmt, b, at, value)
        return bytes(b)

    entries = _entries(tiff)
    read = {tag for _, tag in exif.TAGS.values()} | {0x8769, 0x8825, 0xA005, 0x0201, 0x0202}
    chosen = [e for e in entries if struct.unpack_from(endian + "H", tiff, e)[0] in read]
    chosen += rng.sample(entries, min(OTHER_ENTRIES, len(entries)))
    for entry in chosen:
        tag = struct.unpack_from(endian + "H", tiff, entry)[0]
        out += [(f"{tag:04X}-type{t}", patched("H", entry + 2, t)) for t in TYPES]
        out += [(f"{tag:04X}-count{c}", patched("I", entry + 4, c)) for c in COUNTS]
        for value in (0, 4, len(tiff) - 3, len(tiff) + 8, 0xFFFFFFFF):
            out.append((f"{tag:04X}-value{value}", patched("I", entry + 8, value)))
    for i in range(FLIPS_PER_BLOCK):
        b = bytearray(tiff)
        for _ in range(rng.choice((1, 2, 8))):
            b[rng.randrange(min(len(b), 4096))] ^= rng.randrange(1, 256)
        out.append((f"flip{i}", bytes(b)))
    out += [(f"cut{n}", tiff[:n]) for n in sorted({rng.randrange(len(tiff)) for _ in range(20)} | {2, 7, 8, 10})]
    return out


@pytest.mark.slow
def test_mutants_read_as_exifread_read_them_or_are_read_where_it_gave_up():
    rng = random.Random(SEED)
    compared = gave_up = 0
    for name in MUTATED:
        block = _block(require_dataset(SHARED / name))
        assert block, name
        for label, mutant in _mutants(block, rng):
            ours = exif.read(mutant)  # never raises
            assert not ours.error, (name, label)
            if mutant[:2] not in (b"II", b"MM"):
                continue  # exifread looks for a nested file there; we read nothing
            try:
                theirs = exifread_reading(mutant)
            except Exception:  # noqa: BLE001 - exifread gave up on the whole block: the difference we document
                gave_up += 1
                continue
            compared += 1
            assert ours == theirs, (name, label)
    print(f"\n{compared} mutants compared, {gave_up} where exifread gave up")
    assert compared >= 5000 and gave_up < compared // 10


def _tiff(unique_id_entry: bytes, data: bytes = b"", endian: str = "<") -> bytes:
    """IFD0 (ExifOffset) then an EXIF IFD holding one ImageUniqueID entry; data after it."""
    order = b"II*\x00" if endian == "<" else b"MM\x00*"
    exif_ifd = 8 + 2 + 12 + 4
    data_at = exif_ifd + 2 + 12 + 4
    head = order + struct.pack(endian + "I", 8)
    ifd0 = struct.pack(endian + "HHHII", 1, 0x8769, 4, 1, exif_ifd) + struct.pack(endian + "I", 0)
    sub = struct.pack(endian + "H", 1) + unique_id_entry.replace(b"@@@@", struct.pack(endian + "I", data_at))
    return head + ifd0 + sub + struct.pack(endian + "I", 0) + data


def _entry(typ: int, count: int, inline: bytes | None = None, endian: str = "<") -> bytes:
    value = inline.ljust(4, b"\x00") if inline is not None else b"@@@@"
    return struct.pack(endian + "HHI", 0xA420, typ, count) + value


UNIQUE_IDS = {
    "ascii": _tiff(_entry(2, 33), b"0123456789abcdef0123456789abcdef\x00"),
    "ascii, not UTF-8": _tiff(_entry(2, 5), b"\xff\xfeab\x00"),
    "ascii, blank": _tiff(_entry(2, 4, b"   ")),
    "ascii, all zeros": _tiff(_entry(2, 33), b"0" * 32 + b"\x00"),
    "undefined bytes": _tiff(_entry(7, 16), b"ab\x00cd  12345678\x00\x00"),
    "undefined, one byte": _tiff(_entry(7, 1, b"\x07")),
    "byte, not UTF-8": _tiff(_entry(1, 6), b"\x80\x81abc "),
    "signed byte": _tiff(_entry(6, 3, b"\xff\x01\x02")),
    "short": _tiff(_entry(3, 2, b"\x01\x00\x02\x00")),
    "long, big-endian": _tiff(_entry(4, 1, b"\x00\x00\x01\x00", ">"), endian=">"),
    "rational": _tiff(_entry(5, 2), struct.pack("<IIII", 3, 2, 7, 0)),
    "signed rational": _tiff(_entry(10, 1), struct.pack("<ii", -9, 3)),
    "float": _tiff(_entry(11, 1, struct.pack("<f", 1.5))),
    "ifd type, over 255": _tiff(_entry(13, 2), struct.pack("<II", 300, 1)),
    "count zero": _tiff(_entry(4, 0)),
}


@pytest.mark.parametrize("case", sorted(UNIQUE_IDS))
def test_the_registry_unique_id_key_is_exifreads_for_every_field_type(case):
    block = UNIQUE_IDS[case]
    ours = exif.read(block)
    assert ours.registry_unique_id == exifread_reading(block).registry_unique_id
    assert ours.tag_count == 2  # ExifOffset and ImageUniqueID


def test_the_registry_unique_id_key_of_an_ascii_id():
    assert exif.read(UNIQUE_IDS["ascii"]).registry_unique_id == "0123456789abcdef0123456789abcdef"
    assert exif.read(UNIQUE_IDS["ascii, all zeros"]).registry_unique_id == ""


def test_gps_pointers_to_their_own_ifd_stop_at_the_bound():
    entries = 400  # 400 x 400 entries to walk: over MAX_ENTRIES
    ifd = struct.pack("<H", entries) + struct.pack("<HHII", 0x8825, 4, 1, 8) * entries + struct.pack("<I", 0)
    block = b"II*\x00" + struct.pack("<I", 8) + ifd
    with pytest.raises(tiff_ifd.TooMuchWork):
        tiff_ifd.walk(block, frozenset())
    read = exif.read(block)
    assert read.tag_count == 0 and "too large to read" in read.error


def test_long_arrays_are_counted_never_unpacked():
    """exifread unpacked every value of arrays under 1,000 (5,300 of them in a 64 KB APP1
    took it 3.3 s): the walk reads such a block whole, as the tags it holds."""
    entries = 5000
    data_at = 8 + 2 + 12 * entries + 4
    ifd = struct.pack("<H", entries)
    ifd += b"".join(struct.pack("<HHII", 0xC000 + i, 3, 999, data_at) for i in range(entries))
    block = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bytes(2 * 999)
    read = exif.read(block)
    assert read.tag_count == entries and not read.error


def test_same_name_ids_are_one_tag():
    """exifread names 0x920B and 0xA20B both FlashEnergy: one key, so one tag."""
    entries = [(0x920B, 3, 1, 1), (0xA20B, 3, 1, 2), (0x010F, 2, 4, int.from_bytes(b"abc\x00", "little"))]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    block = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    read = exif.read(block)
    assert read.tag_count == 2 and read.make == "abc"
    assert read == exifread_reading(block)


def test_an_entry_exifread_gives_up_on_is_skipped_alone():
    """A DOUBLE whose value lies past the end: exifread's printable form indexes its empty
    value list and the whole block is lost (EXIF_ABSENT); the walk reads the other tags."""
    entries = [(0x010F, 2, 4, int.from_bytes(b"abc\x00", "little")), (0x0110, 12, 1, 0xFFFF)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    block = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    with pytest.raises(IndexError):
        exifread_reading(block)
    read = exif.read(block)
    assert read.make == "abc" and read.model == "" and read.tag_count == 2 and not read.error
