"""Camera-trace patch features: grid, validity, and that the features see what they claim."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from services.synthesis import traces
from tests.helpers.paths import CAMERA_PHOTOS, require_dataset

SPEC = traces.SamplingSpec()


def _camera_rgb() -> np.ndarray:
    require_dataset(CAMERA_PHOTOS)
    bgr = cv2.imread(str(CAMERA_PHOTOS / "Canon_EOS_450D.jpg"), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[:, :, ::-1])


@pytest.mark.parametrize(("h", "w"), [(64, 64), (480, 640), (3000, 4000), (4032, 3024), (100, 5000)])
def test_grid_is_block_aligned_bounded_and_inside(h, w):
    grid = traces.patch_grid(h, w, SPEC)
    assert 1 <= len(grid) <= SPEC.max_patches
    assert all(y % 8 == 0 for y in grid.ys) and all(x % 8 == 0 for x in grid.xs)
    assert max(grid.ys) + SPEC.patch <= h and max(grid.xs) + SPEC.patch <= w
    assert grid.stride >= SPEC.min_stride and grid.stride % 8 == 0


def test_grid_of_an_image_smaller_than_a_patch_is_empty():
    assert len(traces.patch_grid(40, 4000, SPEC)) == 0


def test_features_shape_finite_and_deterministic():
    rgb = _camera_rgb()
    grid = traces.patch_grid(*rgb.shape[:2], SPEC)
    patches = traces.grid_patches(rgb, grid)
    a = traces.patch_features(patches)
    b = traces.patch_features(patches.copy())
    assert a.shape == (len(grid), traces.feature_count())
    assert a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    # A patch's features do not depend on its batch-mates (serving batches across requests).
    np.testing.assert_allclose(traces.patch_features(patches[3:4])[0], a[3], rtol=1e-5, atol=1e-5)


def test_flat_and_clipped_patches_are_invalid():
    rng = np.random.default_rng(0)
    textured = rng.integers(40, 200, (1, 64, 64, 3), dtype=np.uint8)
    flat = np.full((1, 64, 64, 3), 128, np.uint8)
    clipped = textured.copy()
    clipped[0, :20] = 255
    valid = traces.valid_mask(np.concatenate([textured, flat, clipped]), SPEC)
    assert valid.tolist() == [True, False, False]


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_dct_features_read_the_last_jpeg_quality():
    rgb = _camera_rgb()[:512, :512].copy()
    grid = traces.patch_grid(512, 512, SPEC)
    zero_band = 4 + 12 + 1 + 3 + 3 + 2 + 1 + 64 + 3  # zero fraction of zigzag band u + v = 3
    hi = traces.patch_features(traces.grid_patches(_jpeg(rgb, 95), grid))[:, zero_band]
    lo = traces.patch_features(traces.grid_patches(_jpeg(rgb, 50), grid))[:, zero_band]
    assert np.median(lo) > np.median(hi) + 0.3


def test_cooccurrence_histograms_are_hellinger_normalised():
    rgb = _camera_rgb()
    grid = traces.patch_grid(*rgb.shape[:2], SPEC)
    feats = traces.cooccurrence_features(traces.grid_patches(rgb, grid)[:10])
    assert feats.shape == (10, 81)
    np.testing.assert_allclose((feats**2).sum(axis=1), 1.0, rtol=1e-5)


def test_context_subtracts_the_median_of_valid_patches():
    f = np.arange(12, dtype=np.float32).reshape(4, 3)
    valid = np.array([True, True, True, False])
    ctx = traces.with_context(f, valid)
    assert ctx.shape == (4, 6)
    np.testing.assert_allclose(ctx[:, 3:], f - np.median(f[:3], axis=0))


def test_sampling_spec_rejects_bad_values():
    with pytest.raises(ValueError):
        traces.SamplingSpec(patch=60)
    with pytest.raises(ValueError):
        traces.SamplingSpec(feature_set="other")
