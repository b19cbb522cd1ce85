"""ExifTool as an independent oracle for the fields the findings rest on.

ExifTool runs once for the whole corpus (-j -n -G1: numbers as numbers, tags named by the
group they were read from, so EXIF is compared with EXIF and not with an XMP fallback).
Disagreements are printed and explained in docs/metadata.md.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from services.common.errors import ImageTrustError
from services.metadata.analysis import analyze
from services.metadata.exif import clean_text
from tests.helpers.paths import require_tool
from tests.metadata.corpus import corpus_files

MIN_AGREEMENT = 0.99
EXIFTOOL_TIMEOUT_S = 120  # seconds for the whole corpus, one process
TAGS = [
    "-IFD0:Make",
    "-IFD0:Model",
    "-IFD0:Software",
    "-ExifIFD:DateTimeOriginal",
    "-IFD0:Orientation",
    "-GPS:GPSLatitude",
    "-GPS:GPSLongitude",
    "-Composite:ImageSize",
    "-Error",
]
FIELDS = ("make", "model", "datetime_original", "dimensions", "orientation", "software", "gps_present")


def _ours(a) -> dict[str, object]:
    e = a.exif
    return {
        "make": e.make.casefold(),
        "model": e.model,
        "datetime_original": e.datetime_original,
        "dimensions": f"{a.width}x{a.height}",
        "orientation": a.orientation,
        "software": e.software,
        "gps_present": e.gps_present,
    }


def _theirs(t: dict) -> dict[str, object]:
    def text(key):
        return clean_text(str(t.get(key, "")))

    size = str(t.get("Composite:ImageSize", "")).split()
    return {
        "make": text("IFD0:Make").casefold(),
        "model": text("IFD0:Model"),
        "datetime_original": text("ExifIFD:DateTimeOriginal"),
        "dimensions": "x".join(size) if len(size) == 2 else "",
        "orientation": int(t.get("IFD0:Orientation", 0) or 0),
        "software": text("IFD0:Software"),
        "gps_present": "GPS:GPSLatitude" in t and "GPS:GPSLongitude" in t,
    }


@pytest.mark.slow
def test_agreement_with_exiftool(exif_samples):
    exiftool = require_tool("exiftool", "apt-get install libimage-exiftool-perl (scripts/setup.sh does this)")
    files = corpus_files(exif_samples)
    out = subprocess.run(
        [exiftool, "-j", "-n", "-G1", *TAGS, *map(str, files)],
        capture_output=True,
        timeout=EXIFTOOL_TIMEOUT_S,
        check=False,
    )
    # parse_float=str: ExifTool's JSON writes a numeric-looking string (Software "1.00") as a
    # bare number, which float() would turn into "1.0".
    records = json.loads(out.stdout, parse_float=str)
    theirs = {pathlib_name(t["SourceFile"], exif_samples): t for t in records}
    agree = dict.fromkeys(FIELDS, 0)
    compared = 0
    disagreements = []
    for path in files:
        name = pathlib_name(str(path), exif_samples)
        t = theirs.get(name)
        if t is None or "ExifTool:Error" in t:
            continue  # not readable by the oracle
        try:
            ours = _ours(analyze(path.read_bytes(), 64 << 20, 120_000_000))
        except ImageTrustError:
            continue  # refused by us: covered by the corpus test, not comparable
        compared += 1
        expected = _theirs(t)
        for field in FIELDS:
            if ours[field] == expected[field]:
                agree[field] += 1
            else:
                disagreements.append(f"{name}: {field} ours={ours[field]!r} exiftool={expected[field]!r}")
    print(f"\nExifTool agreement on {compared} readable corpus files:")
    for field in FIELDS:
        print(f"  {field:18s} {agree[field]:4d}/{compared} = {agree[field] / compared:.2%}")
    for line in disagreements:
        print("  DISAGREE", line)
    assert compared >= 95
    for field in FIELDS:
        assert agree[field] / compared >= MIN_AGREEMENT, (field, disagreements)


def pathlib_name(path: str, root) -> str:
    return str(path).split(str(root).rstrip("/") + "/", 1)[-1]
