"""Metadata analysis of the uploaded bytes, as uploaded (never re-encoded).

Order of work: limits and the container header first (so bombs are refused before any
allocation), then the metadata blocks, then the cheap header rules, and the pixel checks
(thumbnail content, double compression) last, each bounded by a pixel budget. The pixel
checks, and the caller's fingerprints after them, read one shared decode (decoded.py),
planned from what they all need.

Two modes:
- `analyze` / `analyze_upload`: every check, the pixel checks within a PixelBudget (the
  service's: every check on). The service follows it with the fingerprints and the registry
  step (pipeline.py), which hash the file and the coded image.
- `analyze_header`, the header path: every check that reads only the container and its
  metadata blocks (structure, EXIF with its thumbnail, XMP, IRB, ICC, quantisation tables,
  and the rules over them), with no pixel decode and no fingerprints. It answers what
  ExifTool answers, so bench_metadata times it against `exiftool -fast`; its cost is in
  docs/metadata.md ("Header path").
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from services.common.errors import InvalidImage
from services.common.findings import Finding
from services.common.imaging import Header, probe, sniff_format
from services.common.limits import check_bytes, check_dimensions
from services.common.structure import check_jpeg_walked, check_structure
from services.metadata import containers, double_jpeg, exif, jpeg, quant, rules, thumbnail, xmp
from services.metadata.decoded import DecodedUpload, DecodeNeeds
from services.metadata.risk import risk_from_findings

ANALYZER_VERSION = "metadata-1"
# Pixels decoded for the thumbnail comparison: libjpeg's 1/8 scaled decoding gets there
# from any phone photo; other formats are decoded whole, so they are capped.
THUMB_COMPARE_MIN_SIDE_PX = 64  # pixels


@dataclasses.dataclass(frozen=True)
class JpegSummary:
    markers: tuple[str, ...]
    progressive: bool
    subsampling: str
    estimated_quality: int
    standard_tables: bool
    trailing_bytes: int
    has_xmp: bool
    has_icc: bool
    has_photoshop_irb: bool


@dataclasses.dataclass(frozen=True)
class Analysis:
    format: str
    width: int
    height: int
    mode: str
    size_bytes: int
    exif: exif.ExifData = exif.ExifData()
    orientation: int = 0
    jpeg: JpegSummary | None = None
    has_xmp: bool = False
    has_icc: bool = False
    has_photoshop_irb: bool = False
    findings: tuple[Finding, ...] = ()
    risk: float = 0.0
    # The EXIF block (TIFF structure) as read, for the fingerprints' ImageUniqueID.
    exif_block: bytes | None = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class PixelBudget:
    # Decoded pixels we accept for the double-compression check (a full-resolution
    # luminance decode, the shared one); larger images skip it.
    double_jpeg_max_pixels: int
    # Largest image compared with its EXIF thumbnail (JPEG is decoded at 1/8 scale,
    # other formats whole).
    thumbnail_max_pixels: int


# The service defaults (MetadataConfig): every check on up to the largest accepted image.
DEFAULT_BUDGET = PixelBudget(120_000_000, 120_000_000)
HEADER_ONLY = PixelBudget(0, 0)  # no image large enough for a pixel check: nothing decoded
NO_NEEDS = DecodeNeeds()  # the caller reads nothing from the decode itself


def analyze(
    data: bytes,
    max_bytes: int,
    max_pixels: int,
    *,
    budget: PixelBudget | None = None,
    now: dt.datetime | None = None,
) -> Analysis:
    return analyze_upload(data, max_bytes, max_pixels, budget=budget, now=now)[0]


def analyze_header(data: bytes, max_bytes: int, max_pixels: int, *, now: dt.datetime | None = None) -> Analysis:
    """The header path: every check that needs no pixel decode (module docstring). Its
    findings are those of `analyze` less the pixel checks' (thumbnail content, double
    compression, unreadable image data)."""
    return analyze_upload(data, max_bytes, max_pixels, budget=HEADER_ONLY, now=now)[0]


def analyze_upload(
    data: bytes,
    max_bytes: int,
    max_pixels: int,
    *,
    budget: PixelBudget | None = None,
    now: dt.datetime | None = None,
    needs: DecodeNeeds = NO_NEEDS,
) -> tuple[Analysis, DecodedUpload]:
    """The analysis and the upload's shared decode, planned for the pixel checks and for
    `needs` (what the caller reads from it afterwards, e.g. fingerprints.NEEDS)."""
    check_bytes(data, max_bytes)
    budget = budget or DEFAULT_BUDGET
    now = now or dt.datetime.now(dt.UTC)
    if sniff_format(data) == "jpeg":
        # Our marker walk (bounded, never decodes) already has the frame header; Pillow's
        # open would parse it again.
        blocks = containers.read(data, "jpeg")
        structure = blocks.jpeg
        assert structure is not None  # containers.read parses every JPEG
        # The structure guard, as probe() runs it for other formats (the pixel checks and the
        # registry decode the file): from the walk's counts when it took the guard's path,
        # so the entropy-coded data is searched once; else by the guard's own walk.
        if structure.walked_as_guard:
            check_jpeg_walked(structure.header_segments, structure.scans)
        else:
            check_structure(data, "jpeg")
        header = _jpeg_header(structure, max_pixels)
    else:
        header = probe(data, max_pixels)  # raises InvalidImage / TooLarge before any decoding
        blocks = containers.read(data, header.format)
    width, height = header.width, header.height
    if blocks.heif is not None and blocks.heif.width and blocks.heif.height:
        width, height = blocks.heif.width, blocks.heif.height  # stored, before irot
    ex = exif.read(blocks.exif)
    orientation = blocks.original_orientation or (ex.orientation if 1 <= ex.orientation <= 8 else 0)
    xm = xmp.read(blocks.xmp)
    structure = blocks.jpeg
    quality = luma_table = None
    if structure is not None:
        luma_table, chroma_table = structure.luma_chroma_tables()
        quality = quant.estimate(luma_table, chroma_table)  # quality 0 without a luma table

    thumb = thumbnail.load(ex.thumbnail) if ex.thumbnail else None
    pixel_error = ""
    similarity = dq = None
    aspect = thumbnail.aspect_log_ratio(width, height, thumb) if thumb is not None else None
    want_dq = (
        luma_table is not None
        and quality is not None
        and quality.quality > 0
        and (width * height <= budget.double_jpeg_max_pixels)
    )
    want_thumb = (
        thumb is not None
        and aspect is not None
        and aspect <= rules.THUMB_ASPECT_TOLERANCE
        and width * height <= budget.thumbnail_max_pixels
    )
    thumb_side = max(THUMB_COMPARE_MIN_SIDE_PX, thumb.width, thumb.height) if thumb is not None and want_thumb else 0
    upload = DecodedUpload(
        data,
        header.format,
        header.width,
        header.height,
        needs | DecodeNeeds(full=want_dq, min_side=thumb_side),
        structure=structure,
    )
    if want_dq or want_thumb:
        try:
            if want_dq and luma_table is not None:
                dq = double_jpeg.analyse(upload.luma(), luma_table)
            if want_thumb and thumb is not None:
                # The smallest view above the thumbnail's size (libjpeg's 1/8 scale for a
                # phone photo): DCT-scaled by the decode, or box-averaged from a full one.
                similarity = thumbnail.similarity(upload.grey_view(thumb_side), thumb)
        except Exception as exc:  # noqa: BLE001 - corrupt entropy data is a finding, not a crash
            cause = exc.__cause__ if isinstance(exc, InvalidImage) and exc.__cause__ is not None else exc
            pixel_error = f"{type(cause).__name__}: {cause}"[:200]

    irb_writer = jpeg.photoshop_writer(blocks.irb) if blocks.irb else ""
    facts = rules.Facts(
        format=header.format,
        width=width,
        height=height,
        exif=ex,
        orientation=orientation,
        xmp=xm,
        irb_present=blocks.irb is not None,
        irb_writer=irb_writer,
        jpeg=structure,
        quality=quality,
        thumb_size=(thumb.width, thumb.height) if thumb is not None else None,
        thumb_aspect_log_ratio=aspect,
        thumb_similarity=similarity,
        double_jpeg=dq,
        pixel_error=pixel_error,
        now=now,
    )
    findings = tuple(rules.evaluate(facts))
    summary = None
    if structure is not None:
        summary = JpegSummary(
            markers=tuple(structure.markers),
            progressive=structure.progressive,
            subsampling=structure.subsampling,
            estimated_quality=quality.quality if quality else 0,
            standard_tables=bool(quality and quality.standard),
            trailing_bytes=structure.trailing_bytes,
            has_xmp=structure.xmp is not None,
            has_icc=structure.icc is not None,
            has_photoshop_irb=structure.irb is not None,
        )
    return (
        Analysis(
            format=header.format,
            width=width,
            height=height,
            mode=header.mode,
            size_bytes=len(data),
            exif=ex,
            orientation=orientation,
            jpeg=summary,
            has_xmp=blocks.xmp is not None,
            has_icc=blocks.icc is not None,
            has_photoshop_irb=blocks.irb is not None,
            findings=findings,
            risk=risk_from_findings(findings),
            exif_block=blocks.exif,
        ),
        upload,
    )


_JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}  # Pillow's names for 1, 3 and 4 components


def _jpeg_header(structure: jpeg.JpegStructure, max_pixels: int) -> Header:
    """Format, size and mode from the frame header (SOF); the bomb guard before decoding."""
    frame = structure.frame
    if frame is None:
        why = "; ".join(structure.anomalies[:2]) or "no frame header (SOF)"
        raise InvalidImage(f"cannot read the jpeg header: {why}")
    check_dimensions(frame.width, frame.height, max_pixels)
    return Header("jpeg", frame.width, frame.height, _JPEG_MODES.get(len(frame.components), "unknown"))
