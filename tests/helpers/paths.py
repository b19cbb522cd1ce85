"""Where the repository and the shared datasets are, and failing loudly without them."""

from __future__ import annotations

import pathlib
import shutil

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
SHARED = REPO.parent / "shared" / "datasets"
EXIF_SAMPLES = SHARED / "exif-samples"
BSDS = SHARED / "bsds500"
CAMERA_PHOTOS = SHARED / "camera-photos"  # one JPEG per camera model, long edge <= 2048 px
SAMPLES = REPO / "imagetrust" / "samples"


def require_tool(name: str, install_hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required for this test and is not installed: {install_hint}", pytrace=False)
    return path


def require_dataset(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (CI clones the repo with ../shared beside it)", pytrace=False)
    return path
