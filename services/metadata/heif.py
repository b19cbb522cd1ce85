"""The HEIF/HEIC primary image's stored size and rotation, from the ISOBMFF boxes.

libheif (through pillow-heif) hands out the image with the container's rotation (irot)
already applied; the stored ("coded") size that ExifTool and the EXIF fields describe is
the primary item's `ispe` property, which we read here without decoding anything. Box
sizes are never trusted: each is bounds-checked against its parent, and walks are bounded.
"""

from __future__ import annotations

import dataclasses
import struct

MAX_BOXES = 1024  # boxes visited per container level; real files have tens


@dataclasses.dataclass(frozen=True)
class HeifInfo:
    width: int = 0
    height: int = 0
    rotation_deg: int = 0  # irot, counter-clockwise, applied by viewers after decoding
    mirrored: bool = False


def _boxes(data: bytes, start: int, end: int):
    pos = start
    for _ in range(MAX_BOXES):
        if pos + 8 > end:
            return
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, s, e in _boxes(data, start, end):
        if k == kind:
            return s, e
    return None


def _primary_properties(data: bytes, meta: tuple[int, int]) -> list[tuple[bytes, int, int]]:
    start, end = meta[0] + 4, meta[1]  # meta is a full box: version and flags first
    pitm = _child(data, start, end, b"pitm")
    iprp = _child(data, start, end, b"iprp")
    if pitm is None or iprp is None:
        return []
    version = data[pitm[0]]
    primary = struct.unpack_from(">H" if version == 0 else ">I", data, pitm[0] + 4)[0]
    ipco = _child(data, iprp[0], iprp[1], b"ipco")
    ipma = _child(data, iprp[0], iprp[1], b"ipma")
    if ipco is None or ipma is None:
        return []
    props = list(_boxes(data, ipco[0], ipco[1]))
    pos = ipma[0]
    version, flags = data[pos], int.from_bytes(data[pos + 1 : pos + 4], "big")
    count = struct.unpack_from(">I", data, pos + 4)[0]
    pos += 8
    for _ in range(min(count, MAX_BOXES)):
        if version < 1:
            item = struct.unpack_from(">H", data, pos)[0]
            pos += 2
        else:
            item = struct.unpack_from(">I", data, pos)[0]
            pos += 4
        n = data[pos]
        pos += 1
        indices = []
        for _ in range(n):
            if flags & 1:
                indices.append(struct.unpack_from(">H", data, pos)[0] & 0x7FFF)
                pos += 2
            else:
                indices.append(data[pos] & 0x7F)
                pos += 1
        if item == primary:
            return [props[i - 1] for i in indices if 0 < i <= len(props)]
        if pos > ipma[1]:
            break
    return []


def read(data: bytes) -> HeifInfo:
    """Never raises: a malformed container yields an empty HeifInfo."""
    try:
        meta = _child(data, 0, len(data), b"meta")
        if meta is None:
            return HeifInfo()
        width = height = rotation = 0
        mirrored = False
        for kind, s, e in _primary_properties(data, meta):
            if kind == b"ispe" and e - s >= 12:
                width, height = struct.unpack_from(">II", data, s + 4)
            elif kind == b"irot" and e - s >= 1:
                rotation = (data[s] & 0x03) * 90
            elif kind == b"imir":
                mirrored = True
        return HeifInfo(width, height, rotation, mirrored)
    except (struct.error, IndexError):
        return HeifInfo()
