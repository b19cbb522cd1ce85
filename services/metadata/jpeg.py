"""A small JPEG marker parser: the segment structure, never the pixels.

We need what Pillow does not expose reliably: the marker sequence in file order, the raw
APPn payloads (EXIF, XMP, ICC, Photoshop IRB), the quantisation tables as stored, the frame
header's sampling factors, and where EOI is (bytes trailing it). Lengths in the file are
never trusted: every read is bounds-checked, loops are bounded, and a malformed file ends
the walk with `truncated`/`anomalies` set instead of raising.
"""

from __future__ import annotations

import dataclasses
import re

# The next marker after entropy-coded data (0xFF followed by anything but a stuffed zero, a
# restart marker or a fill byte) and the markers without a length field: the structure
# guard's own, so the guard and this parser resynchronise the same way.
from services.common.structure import NEXT_MARKER, STANDALONE_MARKERS

# Segments walked before giving up; real files have tens (progressive ones a few hundred).
MAX_SEGMENTS = 4096  # segments
# Marker names kept in the answer; a pathological file may repeat DHT/SOS thousands of times.
MAX_MARKER_NAMES = 256  # names
# XMP and ICC payloads we keep; a camera's XMP is a few KiB, ICC profiles well under 1 MiB.
MAX_BLOCK_BYTES = 4 * 1024 * 1024  # bytes

EXIF_PREFIX = b"Exif\x00\x00"
XMP_PREFIX = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXT_PREFIX = b"http://ns.adobe.com/xmp/extension/\x00"
ICC_PREFIX = b"ICC_PROFILE\x00"
IRB_PREFIX = b"Photoshop 3.0\x00"
ADOBE_PREFIX = b"Adobe"

# JPEG zig-zag order: ZIGZAG[i] is the natural (row-major) index of the i-th stored value.
ZIGZAG = (
    0,
    1,
    8,
    16,
    9,
    2,
    3,
    10,
    17,
    24,
    32,
    25,
    18,
    11,
    4,
    5,
    12,
    19,
    26,
    33,
    40,
    48,
    41,
    34,
    27,
    20,
    13,
    6,
    7,
    14,
    21,
    28,
    35,
    42,
    49,
    56,
    57,
    50,
    43,
    36,
    29,
    22,
    15,
    23,
    30,
    37,
    44,
    51,
    58,
    59,
    52,
    45,
    38,
    31,
    39,
    46,
    53,
    60,
    61,
    54,
    47,
    55,
    62,
    63,
)

_FILL = re.compile(rb"\xff+")  # a run of 0xFF: fill bytes before a marker's code


def marker_name(code: int) -> str:
    if code == 0xD8:
        return "SOI"
    if code == 0xD9:
        return "EOI"
    if code == 0xDA:
        return "SOS"
    if code == 0xDB:
        return "DQT"
    if code == 0xC4:
        return "DHT"
    if code == 0xDD:
        return "DRI"
    if code == 0xDC:
        return "DNL"
    if code == 0xFE:
        return "COM"
    if code == 0xCC:
        return "DAC"
    if 0xC0 <= code <= 0xCF:
        return f"SOF{code - 0xC0}"
    if 0xE0 <= code <= 0xEF:
        return f"APP{code - 0xE0}"
    if 0xD0 <= code <= 0xD7:
        return f"RST{code - 0xD0}"
    return f"0x{code:02X}"


@dataclasses.dataclass(frozen=True)
class Component:
    id: int
    h: int  # horizontal sampling factor
    v: int  # vertical sampling factor
    tq: int  # quantisation table index


@dataclasses.dataclass(frozen=True)
class Frame:
    marker: int  # 0xC0.. SOFn
    precision: int  # bits per sample
    width: int
    height: int
    components: tuple[Component, ...]

    @property
    def progressive(self) -> bool:
        return self.marker in (0xC2, 0xC6, 0xCA, 0xCE)


@dataclasses.dataclass
class JpegStructure:
    markers: list[str] = dataclasses.field(default_factory=list)
    marker_count: int = 0
    # Quantisation tables by index, 64 values in natural (row-major) order.
    qtables: dict[int, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    frame: Frame | None = None
    exif: bytes | None = None  # the TIFF structure (after "Exif\0\0")
    xmp: bytes | None = None
    xmp_extended: bytes = b""
    icc: bytes | None = None
    irb: bytes | None = None  # Photoshop image resource blocks (APP13)
    adobe_app14: bool = False
    comments: list[bytes] = dataclasses.field(default_factory=list)
    eoi_offset: int = -1  # offset just past EOI; -1 when there is none
    trailing_bytes: int = 0
    truncated: bool = False
    anomalies: list[str] = dataclasses.field(default_factory=list)
    # (start, end) offsets of the segments that carry metadata only (APPn but Adobe's APP14,
    # COM), in file order: what the pixel identity key leaves out (pixel_key.py).
    metadata_spans: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    jfif: bool = False  # an APP0 JFIF segment (libjpeg then reads 3 components as YCbCr)
    # The structure guard's counts (services/common/structure.check_jpeg_walked): markers
    # before the first scan's data (the first SOS included, SOI and EOI not), and SOS markers.
    header_segments: int = 0
    scans: int = 0
    # The walk skipped stray or 0xFF fill bytes, or met a 0x00 code, where the guard's own walk
    # resynchronises differently: its counts are then not the guard's.
    resynced: bool = False

    @property
    def progressive(self) -> bool:
        return self.frame is not None and self.frame.progressive

    @property
    def walked_as_guard(self) -> bool:
        """The walk went from SOI to EOI on the structure guard's path, so header_segments
        and scans are what the guard's own walk would count."""
        return self.eoi_offset >= 0 and not self.resynced

    @property
    def subsampling(self) -> str:
        return subsampling_of(self.frame)

    def luma_chroma_tables(self) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
        """The tables the first (Y) and second (Cb) components use."""
        if self.frame is None or not self.frame.components:
            return None, None
        comps = self.frame.components
        luma = self.qtables.get(comps[0].tq)
        chroma = self.qtables.get(comps[1].tq) if len(comps) > 1 else None
        return luma, chroma


def subsampling_of(frame: Frame | None) -> str:
    if frame is None or not frame.components:
        return ""
    comps = frame.components
    if len(comps) == 1:
        return "gray"
    y, c = comps[0], comps[1]
    if len(comps) == 4:
        return "cmyk"
    if c.h == 0 or c.v == 0:
        return "unknown"
    ratio = (y.h // c.h if y.h % c.h == 0 else 0, y.v // c.v if y.v % c.v == 0 else 0)
    return {
        (1, 1): "4:4:4",
        (2, 1): "4:2:2",
        (2, 2): "4:2:0",
        (1, 2): "4:4:0",
        (4, 1): "4:1:1",
        (4, 2): "4:1:0",
    }.get(ratio, f"{y.h}x{y.v}/{c.h}x{c.v}")


def _u16(data: bytes, pos: int) -> int:
    return (data[pos] << 8) | data[pos + 1]


def _parse_dqt(payload: bytes, out: JpegStructure) -> None:
    pos = 0
    # At most 4 tables per segment (indices 0-3), each 65 or 129 bytes.
    for _ in range(4):
        if pos >= len(payload):
            return
        pq, tq = payload[pos] >> 4, payload[pos] & 0x0F
        size = 128 if pq else 64
        values = payload[pos + 1 : pos + 1 + size]
        if len(values) < size or tq > 3:
            out.anomalies.append("DQT segment shorter than its tables")
            return
        if pq:
            stored = [(values[2 * i] << 8) | values[2 * i + 1] for i in range(64)]
        else:
            stored = list(values)
        natural = [0] * 64
        for i, v in enumerate(stored):
            natural[ZIGZAG[i]] = v
        out.qtables[tq] = tuple(natural)
        pos += 1 + size


def _parse_sof(code: int, payload: bytes, out: JpegStructure) -> None:
    if len(payload) < 6:
        out.anomalies.append(f"{marker_name(code)} too short")
        return
    n = payload[5]
    comps = []
    for i in range(min(n, 4)):
        off = 6 + 3 * i
        if off + 3 > len(payload):
            out.anomalies.append(f"{marker_name(code)} shorter than its {n} components")
            break
        hv = payload[off + 1]
        comps.append(Component(payload[off], hv >> 4, hv & 0x0F, payload[off + 2]))
    if out.frame is None:  # the first frame header is the image's (later ones: anomalies)
        out.frame = Frame(code, payload[0], _u16(payload, 3), _u16(payload, 1), tuple(comps))
    else:
        out.anomalies.append("more than one frame header")


def _parse_app(code: int, payload: bytes, out: JpegStructure) -> None:
    if code == 0xE1:
        if payload.startswith(EXIF_PREFIX) and out.exif is None:
            out.exif = payload[len(EXIF_PREFIX) :]
        elif payload.startswith(XMP_PREFIX) and out.xmp is None:
            out.xmp = payload[len(XMP_PREFIX) :]
        elif payload.startswith(XMP_EXT_PREFIX) and len(out.xmp_extended) < MAX_BLOCK_BYTES:
            # GUID (32) + full length (4) + offset (4) precede each chunk.
            out.xmp_extended += payload[len(XMP_EXT_PREFIX) + 40 :]
    elif code == 0xE2 and payload.startswith(ICC_PREFIX):
        chunk = payload[len(ICC_PREFIX) + 2 :]  # sequence number and count precede the data
        if out.icc is None:
            out.icc = chunk
        elif len(out.icc) < MAX_BLOCK_BYTES:
            out.icc += chunk
    elif code == 0xED and payload.startswith(IRB_PREFIX):
        chunk = payload[len(IRB_PREFIX) :]
        out.irb = chunk if out.irb is None else (out.irb + chunk)[:MAX_BLOCK_BYTES]
    elif code == 0xEE and payload.startswith(ADOBE_PREFIX):
        out.adobe_app14 = True


def parse(data: bytes) -> JpegStructure:
    """Walks the segments of a JPEG file. Never raises on malformed input."""
    out = JpegStructure()
    size = len(data)
    if size < 4 or data[0] != 0xFF or data[1] != 0xD8:
        out.truncated = True
        out.anomalies.append("no SOI marker")
        return out
    out.markers.append("SOI")
    out.marker_count = 1
    pos = 2
    for _ in range(MAX_SEGMENTS):
        if pos >= size - 1:
            out.truncated = True
            out.anomalies.append("file ends before EOI")
            return out
        if data[pos] != 0xFF:
            # Garbage between segments: resynchronise on the next marker, as decoders do.
            match = NEXT_MARKER.search(data, pos)
            if match is None:
                out.truncated = True
                out.anomalies.append("file ends before EOI")
                return out
            out.anomalies.append(f"{match.start() - pos} stray bytes at offset {pos}")
            out.resynced = True
            pos = match.start()
        if pos < size - 1 and data[pos + 1] == 0xFF:
            out.resynced = True
            # Fill bytes: skipped with one C-level match (a byte-at-a-time loop took ~0.15 s
            # per MB, and a 32 MB upload can be all fill).
            fill = _FILL.match(data, pos)
            assert fill is not None  # data[pos] is 0xFF: the match has at least that byte
            pos = fill.end() - 1
        if pos >= size - 1:
            continue
        code = data[pos + 1]
        out.marker_count += 1
        if len(out.markers) < MAX_MARKER_NAMES:
            out.markers.append(marker_name(code))
        if code == 0xD9:
            out.eoi_offset = pos + 2
            out.trailing_bytes = size - out.eoi_offset
            return out
        out.resynced = out.resynced or code == 0x00
        if out.scans == 0:
            out.header_segments += 1
        if code == 0xDA:
            out.scans += 1
        if code in STANDALONE_MARKERS:
            pos += 2
            continue
        if pos + 4 > size:
            out.truncated = True
            out.anomalies.append(f"{marker_name(code)} length cut off")
            return out
        length = _u16(data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > size:
            out.truncated = True
            out.anomalies.append(f"{marker_name(code)} at offset {pos} declares {length} bytes past the end")
            return out
        payload = data[pos + 4 : end]
        if (0xE0 <= code <= 0xEF and code != 0xEE) or code == 0xFE:
            out.metadata_spans.append((pos, end))
            out.jfif = out.jfif or (code == 0xE0 and payload[:5] == b"JFIF\x00")
        if code == 0xDB:
            _parse_dqt(payload, out)
        elif 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            _parse_sof(code, payload, out)
        elif 0xE0 <= code <= 0xEF:
            _parse_app(code, payload, out)
        elif code == 0xFE and len(out.comments) < 8:
            out.comments.append(payload[:1024])
        pos = end
        if code == 0xDA:
            # Entropy-coded data runs to the next real marker (searched in C, not a Python loop).
            match = NEXT_MARKER.search(data, pos)
            if match is None:
                out.truncated = True
                out.anomalies.append("scan data runs to the end of the file (no EOI)")
                return out
            pos = match.start()
    out.anomalies.append(f"more than {MAX_SEGMENTS} segments")
    return out


def photoshop_resources(irb: bytes) -> dict[int, bytes]:
    """Photoshop image resource blocks ("8BIM", id, Pascal name, size, data), by id."""
    out: dict[int, bytes] = {}
    pos = 0
    for _ in range(512):  # resources per block; Photoshop writes a few dozen
        if pos + 12 > len(irb) or irb[pos : pos + 4] != b"8BIM":
            break
        rid = _u16(irb, pos + 4)
        name_len = irb[pos + 6]
        name_field = 1 + name_len + ((1 + name_len) & 1)  # padded to even
        p = pos + 6 + name_field
        if p + 4 > len(irb):
            break
        size = int.from_bytes(irb[p : p + 4], "big")
        start = p + 4
        if start + size > len(irb):
            break
        out.setdefault(rid, irb[start : start + size])
        pos = start + size + (size & 1)
    return out


def photoshop_writer(irb: bytes) -> str:
    """The writer name of resource 0x0421 (version info), e.g. "Adobe Photoshop"."""
    info = photoshop_resources(irb).get(0x0421)
    if not info or len(info) < 9:
        return ""
    n = int.from_bytes(info[5:9], "big")
    raw = info[9 : 9 + 2 * min(n, 256)]
    return raw.decode("utf-16-be", "replace").rstrip("\x00").strip()
