"""Bounded walks over a file's container structure, before any decoder sees it.

The declared size (limits.check_dimensions) bounds a decoder's memory, not its work. Some
structures make a decoder loop over something the file can multiply at almost no byte cost
(measured on the 2-core CI machine, Pillow 13 with libjpeg-turbo):

- progressive JPEG scans: libjpeg makes one pass over the coefficient blocks per scan, and
  a scan can be ~30 bytes, so 1,000 repeated scans of a flat 16 MP image are a 125 KB file
  that takes 6 s to decode, in synthesis and again in each of the metadata service's
  decodes (up to three); libjpeg-turbo leaves this limit to applications (`djpeg -maxscans`);
- what precedes the first scan: Pillow's JPEG header reader walks it in Python, one list
  entry per segment and one read per stray or 0xFF fill byte, so a 32 MB upload of 4-byte
  COM segments takes ~10 s and ~1 GB per open, one of fill bytes ~7 s;
- PNG chunks: Pillow walks them in Python too, ~2 us each, so a 32 MB upload of 2.8 million
  empty chunks takes ~6 s per open (the metadata service opens a PNG about five times).

Each walk stops as soon as its limit is passed, so it costs at most that limit's worth of
work; a file over a limit is refused as a decompression bomb (TooLarge) naming the limit.
"""

from __future__ import annotations

import re
import struct

from services.common.errors import TooLarge

# Scans up to EOI. libjpeg's default progressive script writes 10 for colour images and
# real encoders stay in the tens; 100 scans of a 16 MP image decode in 0.6 s here (~5 s
# at the 120 MP limit, against 6 s for 1,000 at 16 MP).
MAX_JPEG_SCANS = 100  # scans
# Segments before the first scan. Real files have tens; an ICC profile may take up to 255
# APP2 segments and an extended XMP packet one APP1 per 64 KB.
MAX_JPEG_HEADER_SEGMENTS = 1024  # segments
# Stray and 0xFF fill bytes between segments before the first scan, which Pillow reads one
# at a time (~0.2 us each). Writers leave a few; this is ~0.2 s of Pillow's time.
MAX_JPEG_HEADER_FILLER = 1024 * 1024  # bytes
# PNG chunks: a floor, plus one per KiB of file. Encoders split the pixel data into IDAT
# chunks of 8 KiB (libpng) to 64 KiB (Pillow) or write one, so a real file has at most
# ~128 per MiB; a flood needs chunks of ~12 bytes.
MIN_PNG_CHUNKS = 4096  # chunks
PNG_BYTES_PER_CHUNK = 1024  # bytes of file per chunk allowed above the floor

# The next marker after entropy-coded data or stray bytes: 0xFF followed by anything but a
# stuffed zero, a restart marker (RST0-7) or another 0xFF (fill).
# (The metadata service's marker parser, services/metadata/jpeg.py, walks with these too.)
NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-7, SOI: no length field
_EOI, _SOS = 0xD9, 0xDA
_PNG_SIGNATURE_BYTES = 8  # bytes
_PNG_CHUNK_OVERHEAD = 12  # bytes: length, type and CRC around the data


def _bomb(what: str) -> TooLarge:
    return TooLarge(f"image has {what} (decompression-bomb guard)", metadata={"structure": what})


_TOO_MANY_HEADER_SEGMENTS = f"more than {MAX_JPEG_HEADER_SEGMENTS} segments before its first scan"
_TOO_MANY_SCANS = f"more than {MAX_JPEG_SCANS} scans"


def check_jpeg_walked(header_segments: int, scans: int) -> None:
    """check_jpeg's answer from the counts of a walk that took check_jpeg's path (a marker
    parser's from SOI to EOI without resynchronising on stray or fill bytes: then it met
    the same markers), so the entropy-coded data is searched once, not twice. Counts as
    check_jpeg's: the markers before the first scan's data (the first SOS included, SOI and
    EOI not), and the SOS markers."""
    if header_segments > MAX_JPEG_HEADER_SEGMENTS:
        raise _bomb(_TOO_MANY_HEADER_SEGMENTS)
    if scans > MAX_JPEG_SCANS:
        raise _bomb(_TOO_MANY_SCANS)


def check_jpeg(data: bytes) -> None:
    """Counts what precedes the first scan, then the scans up to EOI (entropy-coded data
    skipped with one C-level regex search per scan)."""
    size = len(data)
    pos, segments, filler, scans = 2, 0, 0, 0
    while pos < size - 1:
        if data[pos] != 0xFF or data[pos + 1] in (0x00, 0xFF):
            # Stray bytes, or fill before a marker: resynchronise as decoders do.
            match = NEXT_MARKER.search(data, pos)
            if match is None:
                return
            if scans == 0:
                filler += match.start() - pos
                if filler > MAX_JPEG_HEADER_FILLER:
                    raise _bomb(f"more than {MAX_JPEG_HEADER_FILLER} stray or fill bytes before its first scan")
            pos = match.start()
        code = data[pos + 1]
        if code == _EOI:
            return
        if scans == 0:
            segments += 1
            if segments > MAX_JPEG_HEADER_SEGMENTS:
                raise _bomb(_TOO_MANY_HEADER_SEGMENTS)
        if code in STANDALONE_MARKERS:
            pos += 2
            continue
        if pos + 4 > size:
            return
        end = pos + 2 + ((data[pos + 2] << 8) | data[pos + 3])
        if code == _SOS:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise _bomb(_TOO_MANY_SCANS)
            match = NEXT_MARKER.search(data, end)
            if match is None:
                return
            end = match.start()
        pos = max(end, pos + 2)  # a length under 2 is the decoder's error, not a loop


def check_png(data: bytes) -> None:
    """Counts chunks up to IEND (or the end of the data), by their declared lengths."""
    limit = MIN_PNG_CHUNKS + len(data) // PNG_BYTES_PER_CHUNK
    pos, chunks = _PNG_SIGNATURE_BYTES, 0
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        if chunks > limit:
            raise _bomb(f"more than {limit} chunks in {len(data)} bytes")
        if kind == b"IEND":
            return
        pos += _PNG_CHUNK_OVERHEAD + length


def check_structure(data: bytes, fmt: str | None) -> None:
    """Raises TooLarge when the structure of a `fmt` file would make decoding unbounded."""
    if fmt == "jpeg":
        check_jpeg(data)
    elif fmt == "png":
        check_png(data)
