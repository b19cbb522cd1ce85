"""Each finding rule on inputs constructed with Pillow, analysed end to end (no gRPC)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from PIL import Image

from services.common.findings import Finding, Severity
from services.metadata import catalog
from services.metadata.analysis import analyze
from services.metadata.risk import risk_from_findings
from tests.metadata.builders import exif_with_thumbnail, jpeg_bytes, pillow_exif, textured

MAX_BYTES = 32 << 20
MAX_PIXELS = 120_000_000
NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
CAMERA = dict(
    make="Apple",
    model="iPhone 3G",
    datetime="2009:01:01 10:00:00",
    datetime_original="2009:01:01 10:00:00",
    exposure_time=0.01,
)


def run(data: bytes):
    a = analyze(data, MAX_BYTES, MAX_PIXELS, now=NOW)
    return a, {f.code: f for f in a.findings}


def test_no_exif_at_all_vs_stripped_camera_fields():
    _, codes = run(jpeg_bytes(textured(300, 200)))
    assert codes["EXIF_ABSENT"].severity == Severity.MEDIUM and "EXIF_STRIPPED" not in codes
    _, codes = run(jpeg_bytes(textured(300, 200), exif=pillow_exif(orientation=1)))
    assert "EXIF_STRIPPED" in codes and "EXIF_ABSENT" not in codes
    assert codes["EXIF_STRIPPED"].evidence["tag_count"] == "1"
    _, codes = run(jpeg_bytes(textured(1600, 1200), 95, exif=pillow_exif(**CAMERA)))
    assert "EXIF_ABSENT" not in codes and "EXIF_STRIPPED" not in codes


def test_platform_resave_needs_the_size_and_stripped_exif():
    _, codes = run(jpeg_bytes(textured(1080, 810), 80))
    f = codes["PLATFORM_RESAVE"]
    assert f.evidence["width"] == "1080" and "1080" in f.evidence["reason"]
    _, codes = run(jpeg_bytes(textured(773, 1030), 80))  # Naver, from the paper
    assert "PLATFORM_RESAVE" in codes
    _, codes = run(jpeg_bytes(textured(1001, 700), 80))
    assert "PLATFORM_RESAVE" not in codes
    _, codes = run(jpeg_bytes(textured(1080, 810), 80, exif=pillow_exif(**CAMERA)))
    assert "PLATFORM_RESAVE" not in codes


def test_device_resolution_native_mismatch_and_unknown():
    _, codes = run(jpeg_bytes(textured(1600, 1200), 95, exif=pillow_exif(**CAMERA)))
    assert "DEVICE_RESOLUTION_MISMATCH" not in codes and "DEVICE_UNKNOWN" not in codes
    _, codes = run(jpeg_bytes(textured(1000, 700), 95, exif=pillow_exif(**CAMERA, exif_width=1600, exif_height=1200)))
    f = codes["DEVICE_RESOLUTION_MISMATCH"]
    assert f.severity == Severity.MEDIUM and f.evidence["exif_dims_native"] == "True"
    assert "1600x1200" in f.evidence["native_sizes"]
    assert codes["EXIF_DIMENSIONS_MISMATCH"].evidence["exif_width"] == "1600"
    _, codes = run(jpeg_bytes(textured(1000, 700), 95, exif=pillow_exif(make="Acme", model="Phone 9000")))
    assert codes["DEVICE_UNKNOWN"].severity == Severity.INFO and "DEVICE_RESOLUTION_MISMATCH" not in codes


def test_device_table_orientations_crops_and_prefixes():
    iphone = catalog.find_device("Apple", "iPhone 13 Pro Max")
    assert iphone.is_native(4032, 3024) and iphone.is_native(3024, 4032)
    assert iphone.is_native(4032, 2268) and iphone.is_native(3024, 3024)  # 16:9 and 1:1
    assert not iphone.is_native(1080, 1440)
    s21 = catalog.find_device("samsung", "SM-G991B")
    assert s21 is not None and s21.is_native(4000, 2252) and s21.released == dt.date(2021, 1, 1)
    assert catalog.find_device("samsung", "SM-A336N").is_native(4000, 3000)  # the paper's example
    assert catalog.find_device("Apple", "iPhone 99") is None
    assert catalog.find_device("", "") is None


def test_editing_software_from_exif_xmp_and_irb():
    _, codes = run(jpeg_bytes(textured(320, 240), exif=pillow_exif(software="Adobe Photoshop 24.1 (Windows)")))
    f = codes["EDITING_SOFTWARE"]
    assert f.evidence["editors"] == "Adobe Photoshop" and "exif_software" in f.evidence
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description xmp:CreatorTool="GIMP 2.10" '
        b'xmlns:xmp="http://ns.adobe.com/xap/1.0/"/><stEvt:softwareAgent>Snapseed 2.0</stEvt:softwareAgent>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    _, codes = run(jpeg_bytes(textured(320, 240), xmp=xmp))
    f = codes["EDITING_SOFTWARE"]
    assert f.evidence["xmp_creator_tool"] == "GIMP 2.10" and f.evidence["xmp_history"] == "Snapseed 2.0"
    # Camera firmware in Software is not an editor.
    _, codes = run(jpeg_bytes(textured(320, 240), exif=pillow_exif(software="G991BXXU3AUE1")))
    assert "EDITING_SOFTWARE" not in codes


def test_dates_out_of_order_future_before_release_unparseable():
    tags = dict(CAMERA, datetime="2009:01:01 09:00:00", datetime_original="2009:01:01 10:00:00")
    _, codes = run(jpeg_bytes(textured(1600, 1200), 95, exif=pillow_exif(**tags)))
    assert codes["DATE_ORDER_INVALID"].severity == Severity.MEDIUM
    tags = dict(CAMERA, datetime="2031:01:01 09:00:00", datetime_original="2031:01:01 09:00:00")
    _, codes = run(jpeg_bytes(textured(1600, 1200), 95, exif=pillow_exif(**tags)))
    assert codes["DATE_IN_FUTURE"].evidence["reference"].startswith("2025-06-01")
    tags = dict(CAMERA, datetime="2005:01:01 09:00:00", datetime_original="2005:01:01 09:00:00")
    _, codes = run(jpeg_bytes(textured(1600, 1200), 95, exif=pillow_exif(**tags)))
    assert codes["DATE_BEFORE_RELEASE"].evidence["released"] == "2008-07"
    tags = dict(CAMERA, datetime="0000:00:00 00:00:00")
    _, codes = run(jpeg_bytes(textured(1600, 1200), 95, exif=pillow_exif(**tags)))
    assert codes["DATE_UNPARSEABLE"].evidence["field"] == "datetime"
    tags = dict(CAMERA, datetime="2009:01:01 12:00:00")
    _, codes = run(jpeg_bytes(textured(1600, 1200), 95, exif=pillow_exif(**tags)))
    assert codes["DATE_MODIFIED_AFTER_CAPTURE"].severity == Severity.LOW


def test_thumbnail_matching_aspect_and_content():
    img = textured(640, 480, seed=1)
    thumb = jpeg_bytes(img.resize((160, 120)), 85)
    _, codes = run(jpeg_bytes(img, 92, exif=exif_with_thumbnail(thumb)))
    assert not {"THUMBNAIL_ASPECT_MISMATCH", "THUMBNAIL_CONTENT_MISMATCH"} & set(codes)
    # Cropped to 16:9 after capture, old 4:3 thumbnail kept.
    _, codes = run(jpeg_bytes(img.crop((0, 0, 640, 360)), 92, exif=exif_with_thumbnail(thumb)))
    assert "THUMBNAIL_ASPECT_MISMATCH" in codes
    # Same shape, another picture (retouched, or EXIF transplanted from another photo).
    other = Image.fromarray(255 - __import__("numpy").asarray(textured(640, 480, seed=7).rotate(180)))
    _, codes = run(jpeg_bytes(other, 92, exif=exif_with_thumbnail(thumb)))
    f = codes["THUMBNAIL_CONTENT_MISMATCH"]
    assert f.severity == Severity.HIGH and float(f.evidence["similarity"]) < 0.6


def test_thumbnail_letterbox_bars_are_ignored():
    img = textured(600, 400, seed=2)  # 3:2 frame in a 160x120 thumbnail with black bars
    canvas = Image.new("RGB", (160, 120))
    canvas.paste(img.resize((160, 107)), (0, 6))
    _, codes = run(jpeg_bytes(img, 92, exif=exif_with_thumbnail(jpeg_bytes(canvas, 90))))
    assert not {"THUMBNAIL_ASPECT_MISMATCH", "THUMBNAIL_CONTENT_MISMATCH"} & set(codes)


def test_camera_claim_with_standard_tables():
    a, codes = run(jpeg_bytes(textured(1600, 1200), 93, exif=pillow_exif(**CAMERA)))
    f = codes["JPEG_SOFTWARE_TABLES"]
    assert f.severity == Severity.MEDIUM and f.evidence["quality"] == "93"
    assert a.jpeg.standard_tables and a.jpeg.estimated_quality == 93
    _, codes = run(jpeg_bytes(textured(320, 240), 93, exif=pillow_exif(make="Acme", model="X")))
    assert codes["JPEG_SOFTWARE_TABLES"].severity == Severity.LOW  # unknown device
    _, codes = run(jpeg_bytes(textured(320, 240), 60))
    assert "JPEG_SOFTWARE_TABLES" not in codes and codes["JPEG_LOW_QUALITY"].evidence["quality"] == "60"


def test_gps_unique_id_trailing_data():
    tags = dict(CAMERA, image_unique_id="F00DCAFE", gps=(37.5, 127.0))
    _, codes = run(jpeg_bytes(textured(1600, 1200), 95, exif=pillow_exif(**tags)) + b"X" * 100)
    assert codes["GPS_PRESENT"].severity == Severity.INFO and codes["GPS_PRESENT"].evidence["latitude"] == "37.500000"
    assert codes["IMAGE_UNIQUE_ID_PRESENT"].evidence["image_unique_id"] == "F00DCAFE"
    assert codes["JPEG_TRAILING_DATA"].evidence["trailing_bytes"] == "100"
    _, codes = run(jpeg_bytes(textured(1600, 1200), 95, exif=pillow_exif(**CAMERA)))
    assert "IMAGE_UNIQUE_ID_ABSENT" in codes


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_other_formats_carry_exif(fmt):
    buf = io.BytesIO()
    textured(200, 150).save(buf, fmt, exif=pillow_exif(**CAMERA))
    a, codes = run(buf.getvalue())
    assert a.format == fmt.lower() and a.exif.make == "Apple" and a.exif.model == "iPhone 3G"
    assert "EXIF_ABSENT" not in codes and "DEVICE_RESOLUTION_MISMATCH" in codes


def test_risk_noisy_or():
    def f(sev):
        return Finding("X", sev, "m")

    assert risk_from_findings([]) == 0.0
    assert risk_from_findings([f(Severity.INFO)] * 5) == 0.0
    assert risk_from_findings([f(Severity.HIGH)]) == 0.6
    assert risk_from_findings([f(Severity.MEDIUM), f(Severity.MEDIUM)]) == pytest.approx(1 - 0.75**2, abs=1e-4)
    many = risk_from_findings([f(Severity.HIGH)] * 20)
    assert 0.99 < many <= 1.0
