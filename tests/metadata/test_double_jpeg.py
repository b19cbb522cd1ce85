"""Double-compression detection on BSDS500 photos, saved once vs twice with Pillow."""

import io

import numpy as np
from PIL import Image

from services.metadata import double_jpeg, jpeg
from tests.metadata.builders import jpeg_bytes

IMAGES = 6  # BSDS images per case; each takes a few ms


def _detect(data: bytes) -> bool:
    luma = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    return double_jpeg.analyse(luma, jpeg.parse(data).luma_chroma_tables()[0]).detected


def _fresh(path) -> Image.Image:
    # Halve and restore the size: the BSDS JPEG's own 8x8 grid is gone, as in a camera original.
    img = Image.open(path).convert("RGB")
    return img.resize((img.width // 2, img.height // 2), Image.LANCZOS).resize(img.size, Image.BICUBIC)


def test_single_vs_double_compression(bsds):
    paths = sorted((bsds / "val" / "images").glob("*.jpg"))[:IMAGES]
    for path in paths:
        img = _fresh(path)
        for q in (75, 90, 95):
            assert not _detect(jpeg_bytes(img, q)), (path.name, q)
        once = Image.open(io.BytesIO(jpeg_bytes(img, 60))).convert("RGB")
        assert _detect(jpeg_bytes(once, 85)), path.name
