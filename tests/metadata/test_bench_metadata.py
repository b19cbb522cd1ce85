"""bench_metadata's own guards: a missing corpus is one line; its phone files are realistic."""

from __future__ import annotations

import io

import exifread
import pytest
from PIL import Image

from bench import bench_metadata
from services.metadata.analysis import analyze
from tests.helpers.paths import require_tool


def test_a_missing_corpus_is_a_one_line_exit(monkeypatch, tmp_path):
    require_tool("exiftool", "apt-get install libimage-exiftool-perl (scripts/setup.sh does this)")
    missing = tmp_path / "exif-samples"
    monkeypatch.setattr(bench_metadata, "CORPUS", missing)
    with pytest.raises(SystemExit) as info:
        bench_metadata.main(["--quick"])
    assert info.value.code == f"corpus missing: {missing}"


def test_phone_files_carry_an_exif_thumbnail_of_the_photo(tmp_path):
    """The 12 MP set must cost what a phone's file costs: with an IFD1 thumbnail (which
    Pillow cannot write) the thumbnail comparison runs, and finds the two consistent."""
    (path,) = bench_metadata.phone_jpegs(tmp_path, 1)
    data = path.read_bytes()
    tags = exifread.process_file(io.BytesIO(data), details=False)
    assert str(tags["Image Make"]) == "samsung" and str(tags["EXIF ImageUniqueID"]) == f"{0:032x}"
    with Image.open(io.BytesIO(tags["JPEGThumbnail"])) as thumb:
        assert thumb.size == bench_metadata.THUMB_SIZE
    codes = {
        f.code for f in analyze(data, 1 << 26, bench_metadata.MAX_PIXELS, budget=bench_metadata.DEFAULT_BUDGET).findings
    }
    assert "IMAGE_UNIQUE_ID_PRESENT" in codes
    assert not {c for c in codes if c.startswith("THUMBNAIL")}, codes
