"""One preprocessing for training and serving: the serving path (decode bytes, prepare)
gives exactly the tensors the training path (the same view functions on arrays) gives."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from services.common.imaging import decode_rgb
from services.synthesis.checkpoint import default_specs, paper_specs
from services.synthesis.preprocess import (
    PreprocessSpec,
    TilingSpec,
    global_view,
    prepare,
    tile_grid,
    tile_view,
)


def _photo(h=300, w=420, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(base.astype(int) + rng.integers(-4, 5, base.shape), 0, 255).astype(np.uint8)


def test_paper_hls_adjustment_matches_opencv_recipe():
    rgb = _photo(64, 64)
    spec, _ = paper_specs(input_size=64)
    hls = cv2.cvtColor(rgb, cv2.COLOR_RGB2HLS).astype(np.float32)
    hls[..., 1] = np.clip(hls[..., 1] * 1.2, 0, 255)
    hls[..., 2] = np.clip(hls[..., 2] * 0.9, 0, 255)
    expected = cv2.cvtColor(np.rint(hls).astype(np.uint8), cv2.COLOR_HLS2RGB).astype(np.float32) / 255
    expected = (expected - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    got = global_view(rgb, spec)
    assert got.shape == (3, 64, 64)
    assert torch.allclose(got, torch.from_numpy(expected.transpose(2, 0, 1)), atol=1e-5)
    # Lightness x1.2 brightens on average: the adjustment is really applied.
    plain = global_view(rgb, PreprocessSpec(input_size=64))
    assert got.mean() > plain.mean()


@pytest.mark.parametrize("arch", ["forensic", "resnet50"])
def test_serving_path_equals_training_path(arch):
    spec, tiling = default_specs(arch)
    rgb = _photo(600, 700)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")  # lossless: decoded pixels equal rgb
    decoded = decode_rgb(buf.getvalue(), 10**8)
    served = prepare(decoded, spec, tiling)
    assert torch.equal(served.global_input, global_view(rgb, spec))
    grid = served.grid
    t = tiling.tile_size
    for i, (y, x) in enumerate((y, x) for y in grid.ys for x in grid.xs):
        assert torch.equal(served.tile_inputs[i], tile_view(rgb[y : y + t, x : x + t], spec))
    assert len(served.items()) == 1 + grid.rows * grid.cols


def test_grid_covers_edges_and_is_bounded():
    tiling = TilingSpec(tile_size=256, stride=256, max_tiles=16)
    g = tile_grid(600, 1000, tiling)
    assert (g.rows, g.cols) == (3, 4)
    assert g.ys[0] == 0 and g.ys[-1] == 600 - 256 and g.xs[-1] == 1000 - 256
    huge = tile_grid(9000, 12000, tiling)  # 36 x 47 tiles on the plain grid
    assert huge.count <= 16 and huge.rows >= 2 and huge.cols >= 2
    assert huge.xs[-1] == 12000 - 256  # thinned evenly, still reaching the far edge
    assert tile_grid(100, 50_000, tiling).count <= 16
    assert tile_grid(100, 80, tiling).count == 1
    assert tile_grid(600, 600, TilingSpec(tile_size=0)) is None


def test_small_image_tile_is_padded_to_tile_size():
    spec, tiling = default_specs("forensic")
    p = prepare(_photo(100, 80), spec, tiling)
    assert p.tile_inputs.shape == (1, 3, 256, 256)
    assert p.global_input.shape == (3, 256, 256)
    assert (p.width, p.height) == (80, 100)
