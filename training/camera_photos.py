"""Genuine camera photos (the camera's own JPEG data) from ../shared/datasets, split by make.

The consistency model learns what one camera pipeline looks like, and the report measures
it on cameras it never saw, so the split is by MAKE: every photo of a held-out make is out
of training, whatever its model. Sources: camera-photos (one photo per model, from its
index) and the exif-samples files that are unedited camera output of a usable size.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib

import cv2
import numpy as np

SHARED = pathlib.Path(os.environ.get("IMAGETRUST_SHARED", pathlib.Path(__file__).resolve().parents[2] / "shared"))
CAMERA_PHOTOS = SHARED / "datasets" / "camera-photos"
EXIF_SAMPLES = SHARED / "datasets" / "exif-samples" / "jpg"

# exif-samples files that are a camera's own output (no editor in Software), >= 480 px a side.
EXIF_CAMERA_FILES = {
    "Canon_PowerShot_S40.jpg": "canon",
    "Reconyx_HC500_Hyperfire.jpg": "reconyx",
    "exif-org/canon-ixus.jpg": "canon",
    "exif-org/fujifilm-dx10.jpg": "fujifilm",
    "exif-org/fujifilm-finepix40i.jpg": "fujifilm",
    "exif-org/fujifilm-mx1700.jpg": "fujifilm",
    "exif-org/kodak-dc210.jpg": "kodak",
    "exif-org/kodak-dc240.jpg": "kodak",
    "exif-org/nikon-e950.jpg": "nikon",
    "exif-org/olympus-c960.jpg": "olympus",
    "exif-org/ricoh-rdc5300.jpg": "ricoh",
    "exif-org/sanyo-vpcg250.jpg": "sanyo",
    "exif-org/sanyo-vpcsx550.jpg": "sanyo",
    "exif-org/sony-cybershot.jpg": "sony",
    "exif-org/sony-d700.jpg": "sony",
    "gps/DSCN0010.jpg": "nikon",
    "gps/DSCN0021.jpg": "nikon",
    "gps/DSCN0029.jpg": "nikon",
    "gps/DSCN0040.jpg": "nikon",
    "hdr/canon_hdr_NO.jpg": "canon",
    "hdr/iphone_hdr_NO.jpg": "apple",
    "mobile/HMD_Nokia_8.3_5G.jpg": "hmd",
    "mobile/jolla.jpg": "jolla",
    "tests/11-tests.jpg": "canon",
    "tests/22-canon_tags.jpg": "canon",
    "tests/35-empty.jpg": "casio",
    "tests/36-memory_error.jpg": "casio",
    "tests/42_IndexError.jpg": "olympus",
    "tests/67-0_length_string.jpg": "samsung",
    "tests/87_OSError.jpg": "nikon",
}

# Makes held out of training entirely: the report's cross-camera sets come only from these.
TEST_MAKES = frozenset(
    {"nikon", "sony", "olympus", "fujifilm", "htc", "hmd", "leica", "lg", "oppo", "jolla", "pentax", "reconyx"}
)
# Makes for validation loss, early stopping and calibration.
VAL_MAKES = frozenset({"panasonic", "casio", "kodak", "ricoh", "samsung"})
SPLITS = ("train", "val", "test")

# EXIF Make strings to one name per manufacturer.
_MAKE_ALIASES = {
    "eastman": "kodak",
    "asahi": "pentax",
    "lge": "lg",
    "konica": "minolta",
    "jk": "kodak",
    "sony ericsson": "sonyericsson",
    "hewlett-packard": "hp",
    "noritsu": "noritsu",
}


def normalise_make(make: object) -> str:
    text = str(make).strip().lower()
    if text.startswith("sony ericsson"):
        return "sonyericsson"
    first = text.split()[0].rstrip(",.") if text else "unknown"
    return _MAKE_ALIASES.get(first, first)


@dataclasses.dataclass(frozen=True)
class CameraPhoto:
    path: pathlib.Path
    make: str
    model: str


def all_photos() -> list[CameraPhoto]:
    index = json.loads((CAMERA_PHOTOS / "index.json").read_text())
    photos = [
        CameraPhoto(CAMERA_PHOTOS / e["file"], normalise_make(e["make"]), str(e["model"]))
        for e in index
        if str(e["file"]).lower().endswith((".jpg", ".jpeg"))  # the HEIC file: no OpenCV decoder
    ]
    for rel, make in sorted(EXIF_CAMERA_FILES.items()):
        path = EXIF_SAMPLES / rel
        if path.is_file():
            photos.append(CameraPhoto(path, make, rel))
    if not photos:
        raise FileNotFoundError(f"no camera photos under {CAMERA_PHOTOS} (set IMAGETRUST_SHARED)")
    return photos


def split_of(make: str) -> str:
    if make in TEST_MAKES:
        return "test"
    if make in VAL_MAKES:
        return "val"
    return "train"


def photos(split: str) -> list[CameraPhoto]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return [p for p in all_photos() if split_of(p.make) == split]


@functools.lru_cache(maxsize=160)  # ~110 photos, most under 12 MP: fits in memory
def load_rgb(path: pathlib.Path) -> np.ndarray:
    """The photo's pixels as RGB uint8 (read-only), as stored: no orientation change."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None:
        raise FileNotFoundError(f"cannot decode {path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb.setflags(write=False)
    return rgb
