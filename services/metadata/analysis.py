"""Metadata analysis of the uploaded bytes.

MINIMAL until the metadata issue (3) lands: reads the container header (format,
dimensions) and the byte hash, and reports no findings.
"""

from __future__ import annotations

import dataclasses
import hashlib

from services.common.imaging import probe
from services.common.limits import check_bytes

ANALYZER_VERSION = "minimal-0"


@dataclasses.dataclass(frozen=True)
class Analysis:
    format: str
    width: int
    height: int
    mode: str
    size_bytes: int
    sha256: str
    risk: float = 0.0
    findings: tuple = ()


def analyze(data: bytes, max_bytes: int, max_pixels: int) -> Analysis:
    check_bytes(data, max_bytes)
    header = probe(data, max_pixels)
    return Analysis(
        format=header.format, width=header.width, height=header.height, mode=header.mode,
        size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
    )
