"""Deterministic structure-aware mutations of image files, for robustness (fuzz) tests.

Each mutator takes the original bytes and a seeded random.Random and returns a list of
(name, mutant) pairs; the same seed always gives the same mutants, so a failure names an
input anyone can rebuild. Generic mutations (truncation, byte flips, zeroed ranges) apply
to every format; the others aim at the length, count and offset fields parsers trust:
JPEG segments and frame headers, EXIF (TIFF) IFDs, PNG chunks, RIFF (WebP) chunks and
ISOBMFF (HEIF) boxes.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable, Iterator

Mutant = tuple[str, bytes]
Mutator = Callable[[bytes, random.Random], list[Mutant]]

# Prefixes a few bytes long: magic numbers alone, or cut just after them.
TINY_PREFIXES = (0, 1, 2, 3, 4, 8, 12, 16, 24)  # bytes
BYTE_FLIPS = (1, 4, 32)  # bytes changed per flip mutant
ZERO_RUN = 64  # bytes zeroed per zeroed-range mutant


# --- generic ---------------------------------------------------------------------------
def truncations(data: bytes, rng: random.Random, count: int = 6) -> list[Mutant]:
    """Cut at a few fixed small offsets and at random ones through the file."""
    offsets = {n for n in TINY_PREFIXES if n < len(data)}
    offsets |= {rng.randrange(1, len(data)) for _ in range(count)} if len(data) > 1 else set()
    offsets |= {len(data) - 1, len(data) // 2}
    return [(f"truncate@{n}", data[:n]) for n in sorted(offsets)]


def byte_flips(data: bytes, rng: random.Random) -> list[Mutant]:
    out = []
    for n in BYTE_FLIPS:
        b = bytearray(data)
        for _ in range(n):
            i = rng.randrange(len(b))
            b[i] ^= rng.randrange(1, 256)
        out.append((f"flip{n}", bytes(b)))
    return out


def zeroed_ranges(data: bytes, rng: random.Random, count: int = 2) -> list[Mutant]:
    out = []
    for _ in range(count):
        start = rng.randrange(len(data))
        b = bytearray(data)
        b[start : start + ZERO_RUN] = bytes(len(b[start : start + ZERO_RUN]))
        out.append((f"zero@{start}", bytes(b)))
    return out


# --- JPEG ------------------------------------------------------------------------------
def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, marker, total length incl. marker) of the segments before the first scan's
    entropy data (SOS included). Only for well-formed originals."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        code = data[pos + 1]
        length = struct.unpack_from(">H", data, pos + 2)[0]
        out.append((pos, code, 2 + length))
        if code == 0xDA:
            break
        pos += 2 + length
    return out


def jpeg_structure(data: bytes, rng: random.Random) -> list[Mutant]:
    if data[:2] != b"\xff\xd8":
        return []
    segs = jpeg_segments(data)
    out: list[Mutant] = []
    for off, code, size in segs:
        seg = data[off : off + size]
        name = f"{code:02X}@{off}"
        if code != 0xDA:
            out.append((f"drop-{name}", data[:off] + data[off + size :]))
            out.append((f"dup-{name}", data[:off] + seg + data[off:]))
        # The length field: zero, one, all ones, one past the segment, and past the file.
        for label, value in (("len0", 0), ("len1", 1), ("lenFFFF", 0xFFFF), ("len+1", size - 1)):
            b = bytearray(data)
            struct.pack_into(">H", b, off + 2, min(value, 0xFFFF))
            out.append((f"{label}-{name}", bytes(b)))
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            for h, w in ((0, 0), (0, 100), (65535, 65535), (1, 65535), (65500, 65500), (1, 1)):
                b = bytearray(data)
                struct.pack_into(">HH", b, off + 5, h, w)
                out.append((f"sof{h}x{w}-{name}", bytes(b)))
            for ncomp in (0, 2, 255):
                b = bytearray(data)
                b[off + 9] = ncomp
                out.append((f"sofN{ncomp}-{name}", bytes(b)))
            b = bytearray(data)
            b[off + 4] = rng.choice((0, 1, 12, 16, 255))  # precision
            out.append((f"sofP{b[off + 4]}-{name}", bytes(b)))
        if code == 0xDB and size > 6:
            b = bytearray(data)
            b[off + 4] = 0x1F  # 16-bit table index 15: not a valid destination
            out.append((f"dqt-bad-index-{name}", bytes(b)))
            b = bytearray(data)
            b[off + 5 : off + size] = bytes(size - 5)  # all-zero quantisers: division by zero
            out.append((f"dqt-zeros-{name}", bytes(b)))
    # A scan without EOI, EOI right after SOI, and two images back to back.
    out.append(("no-eoi", data[:-2] if data.endswith(b"\xff\xd9") else data))
    out.append(("soi-eoi", b"\xff\xd8\xff\xd9"))
    out.append(("twice", data + data))
    return out


def _exif_tiff(data: bytes) -> tuple[int, int, str] | None:
    """(offset of the TIFF header in data, its length, endian) of the first EXIF APP1."""
    for off, code, size in jpeg_segments(data):
        if code == 0xE1 and data[off + 4 : off + 10] == b"Exif\x00\x00":
            start = off + 10
            endian = {b"II": "<", b"MM": ">"}.get(data[start : start + 2])
            return (start, size - 10, endian) if endian else None
    return None


def _tiff_mutants(data: bytes, base: int, length: int, endian: str, rng: random.Random, tag: str) -> list[Mutant]:
    """Mutations of the IFD0 of a TIFF structure at data[base:base+length]."""
    out: list[Mutant] = []
    ifd0 = struct.unpack_from(endian + "I", data, base + 4)[0]
    if ifd0 + 2 > length:
        return out

    def patched(fmt: str, at: int, value: int) -> bytes:
        b = bytearray(data)
        struct.pack_into(endian + fmt, b, base + at, value)
        return bytes(b)

    out.append((f"{tag}-ifd0-offset-out", patched("I", 4, 0xFFFFFFF0)))
    out.append((f"{tag}-ifd0-offset-self", patched("I", 4, 4)))
    out.append((f"{tag}-ifd0-count-FFFF", patched("H", ifd0, 0xFFFF)))
    n = struct.unpack_from(endian + "H", data, base + ifd0)[0]
    next_at = ifd0 + 2 + 12 * n
    if next_at + 4 <= length:
        out.append((f"{tag}-next-ifd-loop", patched("I", next_at, ifd0)))
        out.append((f"{tag}-next-ifd-out", patched("I", next_at, length + 1000)))
    entries = [ifd0 + 2 + 12 * i for i in range(min(n, 64)) if ifd0 + 14 + 12 * i <= length]
    for entry in rng.sample(entries, min(4, len(entries))):
        t = struct.unpack_from(endian + "H", data, base + entry)[0]
        out.append((f"{tag}-entry{t:04X}-count-huge", patched("I", entry + 4, 0x7FFFFFFF)))
        out.append((f"{tag}-entry{t:04X}-offset-out", patched("I", entry + 8, 0xFFFFFF00)))
        out.append((f"{tag}-entry{t:04X}-type-bad", patched("H", entry + 2, rng.choice((0, 13, 255)))))
    for entry in entries:  # sub-IFD pointers (ExifIFD, GPS, Interop) pointing back at IFD0
        t = struct.unpack_from(endian + "H", data, base + entry)[0]
        if t in (0x8769, 0x8825, 0xA005):
            out.append((f"{tag}-subifd{t:04X}-loop", patched("I", entry + 8, ifd0)))
            out.append((f"{tag}-subifd{t:04X}-out", patched("I", entry + 8, length + 4096)))
            sub = struct.unpack_from(endian + "I", data, base + entry + 8)[0]
            if sub + 2 <= length:
                out.append((f"{tag}-subifd{t:04X}-count-FFFF", patched("H", sub, 0xFFFF)))
    return out


def jpeg_exif(data: bytes, rng: random.Random) -> list[Mutant]:
    found = _exif_tiff(data) if data[:2] == b"\xff\xd8" else None
    if found is None:
        return []
    base, length, endian = found
    return _tiff_mutants(data, base, length, endian, rng, "exif")


# --- TIFF ------------------------------------------------------------------------------
def tiff_ifd(data: bytes, rng: random.Random) -> list[Mutant]:
    endian = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if endian is None:
        return []
    return _tiff_mutants(data, 0, len(data), endian, rng, "tiff")


# --- PNG -------------------------------------------------------------------------------
def png_chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, data length) of each chunk."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        out.append((pos, kind, length))
        pos += 12 + length
    return out


def png_structure(data: bytes, rng: random.Random) -> list[Mutant]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return []
    out: list[Mutant] = []
    for off, kind, length in png_chunks(data):
        name = f"{kind.decode('latin-1')}@{off}"
        crc_at = off + 8 + length
        b = bytearray(data)
        b[crc_at : crc_at + 4] = bytes(4)
        out.append((f"badcrc-{name}", bytes(b)))
        for label, value in (("huge", 0x7FFFFFF0), ("FFFFFFFF", 0xFFFFFFFF), ("len+1", length + 1)):
            b = bytearray(data)
            struct.pack_into(">I", b, off, value)
            out.append((f"{label}-{name}", bytes(b)))
        if kind != b"IHDR":
            out.append((f"drop-{name}", data[:off] + data[off + 12 + length :]))
    ihdr = png_chunks(data)[0][0]

    def with_ihdr(w: int, h: int, depth: int | None = None, colour: int | None = None) -> bytes:
        b = bytearray(data)
        struct.pack_into(">II", b, ihdr + 8, w, h)
        if depth is not None:
            b[ihdr + 16] = depth
        if colour is not None:
            b[ihdr + 17] = colour
        struct.pack_into(">I", b, ihdr + 8 + 13, zlib.crc32(bytes(b[ihdr + 4 : ihdr + 8 + 13])))
        return bytes(b)

    for w, h in ((0, 0), (0, 10), (65535, 65535), (1, 1), (2**31 - 1, 1)):
        out.append((f"ihdr{w}x{h}", with_ihdr(w, h)))
    out.append(("ihdr-depth3", with_ihdr(*struct.unpack_from(">II", data, ihdr + 8), depth=3)))
    out.append(("ihdr-colour7", with_ihdr(*struct.unpack_from(">II", data, ihdr + 8), colour=7)))
    # An eXIf chunk holding a hostile TIFF (IFD0 count 0xFFFF, next IFD pointing at itself).
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0xFFFF) + bytes(12) + struct.pack("<I", 8)
    chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
    after_ihdr = ihdr + 12 + 13
    out.append(("exif-chunk-hostile", data[:after_ihdr] + chunk + data[after_ihdr:]))
    return out


# --- WebP (RIFF) -----------------------------------------------------------------------
def webp_structure(data: bytes, rng: random.Random) -> list[Mutant]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return []
    out: list[Mutant] = []
    for label, value in (("riff0", 0), ("riffhuge", 0xFFFFFFF0), ("riff+8", len(data))):
        b = bytearray(data)
        struct.pack_into("<I", b, 4, value)
        out.append((label, bytes(b)))
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        name = f"{kind.decode('latin-1')}@{pos}"
        for label, value in (("huge", 0xFFFFFFF0), ("zero", 0), ("len+1", size + 1)):
            b = bytearray(data)
            struct.pack_into("<I", b, pos + 4, value)
            out.append((f"{label}-{name}", bytes(b)))
        if kind == b"VP8X" and size >= 10:  # canvas size fields (24-bit, minus one)
            b = bytearray(data)
            b[pos + 12 : pos + 18] = b"\xff\xff\xff\xff\xff\xff"
            out.append((f"vp8x-canvas-max-{name}", bytes(b)))
        if kind == b"EXIF":
            tiff = data[pos + 8 : pos + 8 + size]
            endian = {b"II": "<", b"MM": ">"}.get(tiff[:2])
            if endian:
                out += _tiff_mutants(data, pos + 8, size, endian, rng, "webp-exif")
        pos += 8 + size + (size & 1)
    return out


# --- HEIF (ISOBMFF) --------------------------------------------------------------------
def heif_boxes(data: bytes, rng: random.Random) -> list[Mutant]:
    if data[4:8] != b"ftyp":
        return []
    out: list[Mutant] = []
    # Top-level boxes and the first level inside meta: their 32-bit size fields.
    positions = []
    pos = 0
    while pos + 8 <= len(data) and len(positions) < 16:
        size, kind = struct.unpack_from(">I4s", data, pos)
        positions.append((pos, kind))
        if kind == b"meta":
            inner = pos + 12
            while inner + 8 <= pos + size and len(positions) < 32:
                isize, ikind = struct.unpack_from(">I4s", data, inner)
                positions.append((inner, ikind))
                if isize < 8:
                    break
                inner += isize
        if size < 8:
            break
        pos += size
    for at, kind in positions:
        name = f"{kind.decode('latin-1', 'replace')}@{at}"
        for label, value in (("zero", 0), ("one", 1), ("seven", 7), ("huge", 0xFFFFFFF0)):
            b = bytearray(data)
            struct.pack_into(">I", b, at, value)
            out.append((f"{label}-{name}", bytes(b)))
    # The ispe (image spatial extent) property: 0 and the maximum.
    at = data.find(b"ispe")
    if at > 0:
        for w, h in ((0, 0), (0xFFFFFFFF, 0xFFFFFFFF), (65535, 65535)):
            b = bytearray(data)
            struct.pack_into(">II", b, at + 8, w, h)
            out.append((f"ispe{w}x{h}", bytes(b)))
    return out


GENERIC: tuple[Mutator, ...] = (truncations, byte_flips, zeroed_ranges)
STRUCTURAL: tuple[Mutator, ...] = (jpeg_structure, jpeg_exif, tiff_ifd, png_structure, webp_structure, heif_boxes)
FIXED: tuple[Mutant, ...] = (
    ("empty", b""),
    ("one-byte", b"\xff"),
    ("jpeg-magic", b"\xff\xd8\xff"),
    ("png-magic", b"\x89PNG\r\n\x1a\n"),
    ("tiff-magic-le", b"II*\x00"),
    ("tiff-magic-be", b"MM\x00*"),
    ("riff-webp", b"RIFF\x00\x00\x00\x00WEBP"),
    ("heic-ftyp", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"),
    ("text", b"hello, this is not an image\n" * 4),
)


def mutants(name: str, data: bytes, seed: int) -> Iterator[Mutant]:
    """Every mutant of one file, named "<file>:<mutation>"; deterministic for a seed."""
    rng = random.Random(f"{seed}:{name}")
    for mutator in (*GENERIC, *STRUCTURAL):
        for label, mutant in mutator(data, rng):
            yield f"{name}:{label}", mutant
