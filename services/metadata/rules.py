"""The finding rules: each a small function from the parsed facts to zero or more findings.

Codes, severities and evidence keys are stable API, documented in docs/findings.md.
Rules read only `Facts` (no I/O, no decoding), so each is unit-testable on its own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from services.common.findings import Finding, Severity
from services.metadata import catalog
from services.metadata.double_jpeg import DoubleJpegResult
from services.metadata.exif import ExifData
from services.metadata.jpeg import JpegStructure
from services.metadata.quant import QualityEstimate
from services.metadata.xmp import XmpData

SOURCE = "metadata"
EXIF_DATE_FORMAT = "%Y:%m:%d %H:%M:%S"
# EXIF dates carry no time zone: allow a day before calling one "in the future".
FUTURE_TOLERANCE = dt.timedelta(days=1)
# Release dates are months (and review units ship early): two months of slack.
RELEASE_TOLERANCE = dt.timedelta(days=60)
# A DateTime this much after DateTimeOriginal means a later save, not the capture itself.
MODIFIED_TOLERANCE = dt.timedelta(seconds=60)
# |ln(aspect ratio)| between thumbnail content and image above which they disagree
# (5%: a 160x120 thumbnail rounds a 3:2 frame's bars by under 1%).
THUMB_ASPECT_TOLERANCE = 0.05
# Correlation of 32x32 grey versions under which thumbnail and image show different
# pictures; the same picture scores above 0.9 even after resizing and recompression.
THUMB_MIN_SIMILARITY = 0.6
# Estimated IJG quality at or under which a JPEG is heavily recompressed (SNS/web).
LOW_QUALITY = 75  # IJG quality
# Trailing bytes we ignore: some writers pad after EOI.
TRAILING_PADDING_BYTES = 32  # bytes
MAX_LISTED_SIZES = 12  # native sizes listed in evidence


@dataclasses.dataclass(frozen=True)
class Facts:
    format: str
    width: int  # stored, before orientation
    height: int
    exif: ExifData
    orientation: int
    xmp: XmpData
    irb_present: bool
    irb_writer: str
    jpeg: JpegStructure | None
    quality: QualityEstimate | None
    thumb_size: tuple[int, int] | None  # decoded thumbnail size, None when none/unreadable
    thumb_aspect_log_ratio: float | None
    thumb_similarity: float | None
    double_jpeg: DoubleJpegResult | None
    pixel_error: str
    now: dt.datetime  # reference for "future" (the upload time)

    @property
    def camera_exif(self) -> bool:
        return bool(self.exif.camera_fields)

    @property
    def claims_camera(self) -> bool:
        return bool(self.exif.make or self.exif.model)


def _f(code: str, severity: Severity, message: str, **evidence: object) -> Finding:
    return Finding(code, severity, message, {k: str(v) for k, v in evidence.items()}, SOURCE)


def exif_presence(f: Facts) -> list[Finding]:
    if f.exif.tag_count == 0 or (f.format == "tiff" and not f.camera_exif):
        # A TIFF's first IFD is its own image structure, so "tags present" says nothing.
        camera_format = f.format in ("jpeg", "heif")
        return [
            _f(
                "EXIF_ABSENT",
                Severity.MEDIUM if camera_format else Severity.LOW,
                "The file carries no EXIF at all: cameras and phones always write it, so it was "
                "stripped (SNS/web download, screenshot, export) or never came from a camera.",
                format=f.format,
                xmp_present=f.xmp.present,
                **({"exif_error": f.exif.error} if f.exif.error else {}),
            )
        ]
    if not f.camera_exif:
        return [
            _f(
                "EXIF_STRIPPED",
                Severity.MEDIUM,
                "EXIF is present but every camera field (make, model, capture date, exposure) is "
                "gone: the typical trace of an SNS/web pipeline or an export that strips metadata.",
                tag_count=f.exif.tag_count,
            )
        ]
    return []


def platform_resave(f: Facts) -> list[Finding]:
    if f.camera_exif:
        return []
    why = catalog.platform_sizes().matches(f.width, f.height)
    if not why:
        return []
    return [
        _f(
            "PLATFORM_RESAVE",
            Severity.MEDIUM,
            f"Looks downloaded from an SNS or website: {why}, and no camera EXIF remains.",
            width=f.width,
            height=f.height,
            reason=why,
            exif_tag_count=f.exif.tag_count,
        )
    ]


def _fmt_sizes(sizes: tuple[tuple[int, int], ...]) -> str:
    listed = ", ".join(f"{w}x{h}" for w, h in sizes[:MAX_LISTED_SIZES])
    return listed + (", ..." if len(sizes) > MAX_LISTED_SIZES else "")


def device_resolution(f: Facts) -> list[Finding]:
    if not f.exif.model:
        return []
    device = catalog.find_device(f.exif.make, f.exif.model)
    if device is None:
        return [
            _f(
                "DEVICE_UNKNOWN",
                Severity.INFO,
                f"Camera {f.exif.make} {f.exif.model} is not in the device table, so its resolution "
                "cannot be checked (unknown, not a mismatch).",
                make=f.exif.make,
                model=f.exif.model,
            )
        ]
    if device.is_native(f.width, f.height):
        return []
    exif_dims = (f.exif.exif_width, f.exif.exif_height)
    exif_native = bool(all(exif_dims)) and device.is_native(*exif_dims)
    if exif_native:
        message = (
            f"{f.width}x{f.height} is not a size the {device.name()} saves, although EXIF records "
            f"its native {exif_dims[0]}x{exif_dims[1]}: resized or cropped after capture."
        )
    else:
        message = (
            f"The {device.name()} never saves {f.width}x{f.height} (native: {_fmt_sizes(device.sizes)}): "
            "resized, cropped, or the EXIF camera claim does not belong to this image."
        )
    return [
        _f(
            "DEVICE_RESOLUTION_MISMATCH",
            Severity.MEDIUM,
            message,
            make=f.exif.make,
            model=f.exif.model,
            width=f.width,
            height=f.height,
            native_sizes=_fmt_sizes(device.sizes),
            exif_width=exif_dims[0],
            exif_height=exif_dims[1],
            exif_dims_native=exif_native,
        )
    ]


def exif_dimensions(f: Facts) -> list[Finding]:
    ew, eh = f.exif.exif_width, f.exif.exif_height
    if not ew or not eh or (ew, eh) in ((f.width, f.height), (f.height, f.width)):
        return []
    return [
        _f(
            "EXIF_DIMENSIONS_MISMATCH",
            Severity.LOW,
            f"EXIF says the image is {ew}x{eh} but it is {f.width}x{f.height}: resized or cropped by "
            "software that kept the original EXIF.",
            exif_width=ew,
            exif_height=eh,
            width=f.width,
            height=f.height,
        )
    ]


def editing_software(f: Facts) -> list[Finding]:
    sources: list[tuple[str, str, str]] = []  # (where, value, editor)
    candidates = [("exif_software", f.exif.software), ("xmp_creator_tool", f.xmp.creator_tool)]
    candidates += [("xmp_history", agent) for agent in f.xmp.history_agents]
    candidates.append(("photoshop_irb", f.irb_writer))
    for where, value in candidates:
        editor = catalog.find_editor(value)
        if editor:
            sources.append((where, value, editor))
    if sources:
        editors = list(dict.fromkeys(e for _, _, e in sources))
        evidence = {"editors": ", ".join(editors)}
        for where, value, _ in sources:
            evidence.setdefault(where, value)
        if f.xmp.history_actions:
            evidence["xmp_history_actions"] = ", ".join(f.xmp.history_actions)
        return [
            _f(
                "EDITING_SOFTWARE",
                Severity.MEDIUM,
                f"Saved by editing software ({', '.join(editors)}): the pixels may have been changed after capture.",
                **evidence,
            )
        ]
    if f.irb_present:
        return [
            _f(
                "PHOTOSHOP_IRB_PRESENT",
                Severity.LOW,
                "A Photoshop image-resource block (APP13/IRB) is present: written by Adobe software "
                "or a photo manager, never by a camera.",
                writer=f.irb_writer or "unknown",
            )
        ]
    return []


def _parse_date(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text.strip()[:19], EXIF_DATE_FORMAT)
    except ValueError:
        return None


def dates(f: Facts, release: dt.date | None) -> list[Finding]:
    out: list[Finding] = []
    fields = {
        "datetime": f.exif.datetime,
        "datetime_original": f.exif.datetime_original,
        "datetime_digitized": f.exif.datetime_digitized,
    }
    parsed: dict[str, dt.datetime] = {}
    for name, text in fields.items():
        if not text:
            continue
        value = _parse_date(text)
        if value is None:
            out.append(
                _f(
                    "DATE_UNPARSEABLE",
                    Severity.LOW,
                    f"EXIF {name} is not a valid date ({text!r}): a blank/zero camera clock or a hand-edited field.",
                    field=name,
                    value=text,
                )
            )
        else:
            parsed[name] = value
    now = f.now.replace(tzinfo=None)
    future = {n: v for n, v in parsed.items() if v > now + FUTURE_TOLERANCE}
    if future:
        name, value = next(iter(future.items()))
        out.append(
            _f(
                "DATE_IN_FUTURE",
                Severity.MEDIUM,
                f"EXIF {name} {value:%Y-%m-%d %H:%M:%S} is after the upload time: a wrong camera clock "
                "or an edited date.",
                field=name,
                value=fields[name],
                reference=f"{now:%Y-%m-%d %H:%M:%S}",
            )
        )
    original, modified = parsed.get("datetime_original"), parsed.get("datetime")
    if original and modified:
        if modified < original:
            out.append(
                _f(
                    "DATE_ORDER_INVALID",
                    Severity.MEDIUM,
                    "EXIF DateTime (last change) is earlier than DateTimeOriginal (capture): "
                    "impossible for an untouched file, so the dates were edited.",
                    datetime=fields["datetime"],
                    datetime_original=fields["datetime_original"],
                )
            )
        elif modified - original > MODIFIED_TOLERANCE:
            out.append(
                _f(
                    "DATE_MODIFIED_AFTER_CAPTURE",
                    Severity.LOW,
                    "EXIF DateTime is later than the capture time: the file was saved again after it was taken.",
                    datetime=fields["datetime"],
                    datetime_original=fields["datetime_original"],
                )
            )
    if original and release and original.date() < release - RELEASE_TOLERANCE:
        out.append(
            _f(
                "DATE_BEFORE_RELEASE",
                Severity.MEDIUM,
                f"Captured {original:%Y-%m-%d}, before the {f.exif.model} existed ({release:%Y-%m}): "
                "an unset camera clock, an edited date, or EXIF from another camera.",
                datetime_original=fields["datetime_original"],
                model=f.exif.model,
                released=f"{release:%Y-%m}",
            )
        )
    return out


def thumbnail(f: Facts) -> list[Finding]:
    if f.thumb_size is None:
        return []
    out = []
    tw, th = f.thumb_size
    if f.thumb_aspect_log_ratio is not None and f.thumb_aspect_log_ratio > THUMB_ASPECT_TOLERANCE:
        out.append(
            _f(
                "THUMBNAIL_ASPECT_MISMATCH",
                Severity.MEDIUM,
                f"The EXIF thumbnail ({tw}x{th}) has another shape than the image ({f.width}x{f.height}): "
                "the image was cropped after capture, or the EXIF comes from another photo.",
                thumbnail_width=tw,
                thumbnail_height=th,
                width=f.width,
                height=f.height,
                log_aspect_ratio=f"{f.thumb_aspect_log_ratio:.3f}",
            )
        )
    elif f.thumb_similarity is not None and f.thumb_similarity < THUMB_MIN_SIMILARITY:
        out.append(
            _f(
                "THUMBNAIL_CONTENT_MISMATCH",
                Severity.HIGH,
                "The EXIF thumbnail shows a different picture than the image: the image was edited "
                "after capture, or its EXIF was copied from another photo.",
                similarity=f"{f.thumb_similarity:.3f}",
                threshold=THUMB_MIN_SIMILARITY,
                thumbnail_width=tw,
                thumbnail_height=th,
            )
        )
    return out


def jpeg_traces(f: Facts) -> list[Finding]:
    if f.jpeg is None:
        return []
    out = []
    q = f.quality
    if q is not None and q.quality and q.standard and f.claims_camera:
        device = catalog.find_device(f.exif.make, f.exif.model)
        # MEDIUM only for devices known to use tables of their own: some older cameras
        # and phones write libjpeg's tables themselves.
        trusted = device is not None and not device.ijg_tables
        out.append(
            _f(
                "JPEG_SOFTWARE_TABLES",
                Severity.MEDIUM if trusted else Severity.LOW,
                f"EXIF names a camera ({f.exif.make} {f.exif.model}) but the quantisation tables are "
                f"exactly libjpeg's at quality {q.quality}: the file was re-saved by software.",
                quality=q.quality,
                make=f.exif.make,
                model=f.exif.model,
                device_known=device is not None,
                device_uses_ijg_tables=bool(device and device.ijg_tables),
            )
        )
    if q is not None and q.quality and q.quality <= LOW_QUALITY:
        out.append(
            _f(
                "JPEG_LOW_QUALITY",
                Severity.LOW,
                f"Estimated JPEG quality {q.quality}: heavily recompressed, as SNS and web pipelines "
                "do; camera originals are saved at 90 or more.",
                quality=q.quality,
                standard_tables=q.standard,
            )
        )
    if f.double_jpeg is not None and f.double_jpeg.detected:
        d = f.double_jpeg
        out.append(
            _f(
                "JPEG_DOUBLE_COMPRESSION",
                Severity.MEDIUM,
                "The DCT coefficient histograms have the periodic holes of a JPEG compressed twice: "
                "decoded and saved again (edited or re-uploaded).",
                break_share=f"{d.break_share:.2f}",
                breaks=d.breaks,
                judged_bins=d.judged_bins,
                blocks=d.blocks,
            )
        )
    if f.jpeg.trailing_bytes > TRAILING_PADDING_BYTES:
        out.append(
            _f(
                "JPEG_TRAILING_DATA",
                Severity.LOW,
                f"{f.jpeg.trailing_bytes} bytes follow the end-of-image marker (appended data: a second "
                "image, a vendor trailer, or something hidden).",
                trailing_bytes=f.jpeg.trailing_bytes,
            )
        )
    if f.jpeg.truncated or f.jpeg.anomalies:
        out.append(
            _f(
                "JPEG_STRUCTURE_ANOMALY",
                Severity.LOW,
                "The JPEG structure is malformed (" + "; ".join(f.jpeg.anomalies[:3]) + ").",
                truncated=f.jpeg.truncated,
                anomalies="; ".join(f.jpeg.anomalies[:5]),
            )
        )
    return out


def pixels(f: Facts) -> list[Finding]:
    if not f.pixel_error:
        return []
    return [
        _f(
            "IMAGE_DATA_UNREADABLE",
            Severity.LOW,
            "The image header and metadata are readable but the pixel data is not (truncated or "
            "corrupt); pixel-based checks were skipped.",
            error=f.pixel_error,
        )
    ]


def privacy_and_ids(f: Facts) -> list[Finding]:
    out = []
    if f.exif.gps_present:
        out.append(
            _f(
                "GPS_PRESENT",
                Severity.INFO,
                "The photo carries GPS coordinates: a privacy risk for the seller if it is published "
                "with them (not a sign of fraud).",
                latitude=f.exif.gps_latitude,
                longitude=f.exif.gps_longitude,
            )
        )
    if f.exif.image_unique_id:
        out.append(
            _f(
                "IMAGE_UNIQUE_ID_PRESENT",
                Severity.INFO,
                "EXIF ImageUniqueID is present; the registry checks whether it was seen before.",
                image_unique_id=f.exif.image_unique_id,
            )
        )
    elif f.camera_exif:
        out.append(
            _f(
                "IMAGE_UNIQUE_ID_ABSENT",
                Severity.INFO,
                "Camera EXIF without an ImageUniqueID (many cameras write none): reuse is checked by "
                "content hashes only.",
            )
        )
    return out


RULES: tuple[Callable[[Facts], list[Finding]], ...] = (
    exif_presence,
    platform_resave,
    device_resolution,
    exif_dimensions,
    editing_software,
    thumbnail,
    jpeg_traces,
    pixels,
    privacy_and_ids,
)


def evaluate(facts: Facts) -> list[Finding]:
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule(facts))
    device = catalog.find_device(facts.exif.make, facts.exif.model)
    findings.extend(dates(facts, device.released if device else None))
    return findings
