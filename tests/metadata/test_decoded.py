"""The shared decode: one decode per upload, the same pixels as the reference decoders, and
views and orientation as Pillow gives them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from services.metadata import fingerprints
from services.metadata.analysis import DEFAULT_BUDGET, PixelBudget
from services.metadata.decoded import DecodedUpload, DecodeNeeds, jpeg_scale
from services.metadata.pipeline import inspect
from services.metadata.registry.model import Sighting
from tests.metadata.corpus import corpus_files

MAX_BYTES = 64 << 20  # bytes
MAX_PIXELS = 120_000_000  # pixels


def _upload(data: bytes, needs: DecodeNeeds) -> DecodedUpload:
    with Image.open(io.BytesIO(data)) as img:
        fmt = "jpeg" if img.format in ("JPEG", "MPO") else str(img.format).lower()
        return DecodedUpload(data, fmt, img.width, img.height, needs)


def _pillow_y(data: bytes, scale: int = 1) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    img.draft("L", (img.width // scale, img.height // scale))
    img.load()
    return np.asarray(img if img.mode == "L" else img.convert("L"))


@pytest.mark.parametrize("budget", [DEFAULT_BUDGET, PixelBudget(0, 0)], ids=["every-check", "header-checks"])
def test_every_corpus_file_is_decoded_at_most_once(exif_samples, budget):
    """The whole answer (pixel checks, pHash, pixel key) reads one decode, and a consumer
    that declared colour and full resolution (a descriptor) gets them from that same decode."""
    decoded = 0
    for path in corpus_files(exif_samples):
        data = path.read_bytes()
        try:
            done = inspect(
                data, MAX_BYTES, MAX_PIXELS, budget=budget, now=None, sighting=Sighting(), register=False, registry=None
            )
        except Exception as exc:  # noqa: BLE001 - a refused header is no decode at all
            assert type(exc).__name__ in ("InvalidImage", "TooLarge"), path.name
            continue
        assert done.decodes <= 1, path.name
        decoded += done.decodes
    assert decoded >= 90


def test_a_colour_consumer_declared_up_front_shares_the_one_decode(exif_samples):
    data = (exif_samples / "jpg" / "Reconyx_HC500_Hyperfire.jpg").read_bytes()
    up = _upload(data, fingerprints.NEEDS | DecodeNeeds(full=True, colour=True))
    rgb, grey, view = up.rgb(), up.luma(), up.colour_view(64)
    fingerprints.compute(data, MAX_PIXELS, upload=up)
    assert up.decodes == 1
    assert rgb.shape == (grey.shape[0], grey.shape[1], 3) and rgb.dtype == np.uint8
    assert max(view.shape[:2]) < max(rgb.shape[:2]) and min(view.shape[:2]) >= 64
    with pytest.raises(ValueError):
        rgb[0, 0, 0] = 1  # shared between consumers: read-only


def test_undeclared_needs_are_still_served_and_counted(exif_samples):
    data = (exif_samples / "jpg" / "Reconyx_HC500_Hyperfire.jpg").read_bytes()
    up = _upload(data, DecodeNeeds(min_side=64))
    small = up.grey_view(64)
    assert up.decodes == 1 and small.shape[1] < up.width
    assert up.luma().shape == (up.height, up.width)  # full resolution was not planned: a second decode
    assert up.decodes == 2


def test_grey_and_colour_decodes_equal_pillows_on_every_corpus_jpeg(exif_samples, bsds):
    """OpenCV is used where it decodes exactly as Pillow (the reference): the Y plane at full
    and at 1/8 scale, and RGB; every exif-samples JPEG (broken ones included) and 30 BSDS."""
    paths = [p for p in exif_samples.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg")]
    paths += sorted((bsds / "val" / "images").glob("*.jpg"))[:30]
    compared = 0
    for path in paths:
        data = path.read_bytes()
        try:
            reference = _pillow_y(data)
            reference_rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        except Exception:  # noqa: BLE001 - the reference cannot decode it: nothing to compare
            continue
        up = _upload(data, DecodeNeeds(full=True))
        assert np.array_equal(up.luma(), reference), path.name
        colour = _upload(data, DecodeNeeds(full=True, colour=True))
        assert np.array_equal(colour.rgb(), reference_rgb), path.name
        scale = jpeg_scale(up.width, up.height, 64)
        small = _upload(data, DecodeNeeds(min_side=64)).grey_view(64)
        assert np.array_equal(small, _pillow_y(data, scale)), path.name
        compared += 1
    assert compared >= 0.8 * len(paths)


def test_a_truncated_file_fails_once_for_every_consumer(exif_samples):
    from services.common.errors import InvalidImage

    whole = (exif_samples / "jpg" / "Nikon_D70.jpg").read_bytes()
    up = _upload(whole[: len(whole) * 9 // 10], DecodeNeeds(full=True))
    for read in (up.luma, lambda: up.grey_view(64), lambda: fingerprints.compute(up.data, MAX_PIXELS, upload=up)):
        with pytest.raises(InvalidImage, match="truncated"):
            read()
    assert up.decodes == 1


def test_displayed_turns_views_as_pillow_does(exif_samples):
    for orientation in range(1, 9):
        data = (exif_samples / "jpg" / "orientation" / f"landscape_{orientation}.jpg").read_bytes()
        up = _upload(data, DecodeNeeds(full=True, colour=True))
        assert up.orientation == orientation
        expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data)).convert("RGB")))
        assert np.array_equal(up.displayed(up.rgb()), expected), orientation


def test_exif_thumbnails_decode_as_pillow_decodes_them(exif_samples):
    """thumbnail.load takes OpenCV's Y plane where it equals Pillow's draft("L") decode:
    every corpus thumbnail it takes is bit-equal, and most take it."""
    from services.common.imaging import sniff_format
    from services.metadata import containers, exif, thumbnail

    thumbs = []
    for path in corpus_files(exif_samples):
        data = path.read_bytes()
        try:
            block = containers.read(data, sniff_format(data) or "").exif
        except Exception:  # noqa: BLE001 - no readable container: no thumbnail
            continue
        thumb = exif.read(block).thumbnail
        if thumb:
            thumbs.append(thumb)
    fast = 0
    for thumb in thumbs:
        grey = thumbnail._opencv_y_plane(thumb)
        if grey is None:
            continue
        img = Image.open(io.BytesIO(thumb))
        img.draft("L", img.size)
        assert np.array_equal(grey, np.asarray(img.convert("L"), dtype=np.float32))
        fast += 1
    assert len(thumbs) >= 40 and fast >= 0.9 * len(thumbs)
