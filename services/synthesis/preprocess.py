"""The ONE preprocessing implementation, used by training and serving alike.

Both sides call `global_view`, `tile_view` and `tile_grid` with the specs a checkpoint
declares (checkpoint.py stores them; training writes them, serving reads them), so the
pixels a model sees in production are computed by the same code, with the same numbers,
as the pixels it was trained on.

Pipeline for one model input (an RGB uint8 array, orientation already applied):
1. geometry: the global view is the whole image resized to input_size x input_size
   (squashed, as the paper resizes to 224x224; area interpolation when shrinking, so
   downscaling does not alias); a tile is a native-resolution crop, never resampled, so
   the noise and compression traces the forensic model reads survive.
2. colour: "rgb" as is; "hls_rgb" the paper's adjustment (OpenCV HLS, lightness x gain,
   saturation x gain, clipped, back to RGB); "hls" the adjusted H, L, S channels themselves.
3. scale to [0, 1], subtract mean, divide by std, per channel; CHW float32.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # per channel, [0, 1] units
IMAGENET_STD = (0.229, 0.224, 0.225)  # per channel, [0, 1] units
COLOUR_SPACES = ("rgb", "hls_rgb", "hls")
LOCAL_AGGREGATES = ("max", "mean", "top_k_mean")
# OpenCV's 8-bit HLS stores hue as degrees / 2 (0..180) and L, S as 0..255.
_HLS_MAX = np.array([180.0, 255.0, 255.0], dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class PreprocessSpec:
    """How pixels become a model input. Stored in every checkpoint."""

    input_size: int = 224  # px, edge of the square global view
    colour_space: str = "rgb"  # one of COLOUR_SPACES
    lightness_gain: float = 1.0  # x, applied to HLS lightness when colour_space starts with "hls"
    saturation_gain: float = 1.0  # x, applied to HLS saturation likewise
    mean: tuple[float, float, float] = IMAGENET_MEAN  # [0, 1] units, per output channel
    std: tuple[float, float, float] = IMAGENET_STD  # [0, 1] units, per output channel

    def __post_init__(self) -> None:
        if self.input_size <= 0:
            raise ValueError("input_size must be positive")
        if self.colour_space not in COLOUR_SPACES:
            raise ValueError(f"colour_space must be one of {COLOUR_SPACES}, got {self.colour_space!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need 3 values each, std positive")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def describe(self) -> str:
        colour = self.colour_space
        if colour != "rgb":
            colour += f"(L x{self.lightness_gain:g}, S x{self.saturation_gain:g})"
        fmt = lambda vs: "[" + ", ".join(f"{v:.4g}" for v in vs) + "]"  # noqa: E731
        return f"{self.input_size}px global, {colour}, mean {fmt(self.mean)} std {fmt(self.std)}"


@dataclasses.dataclass(frozen=True)
class TilingSpec:
    """Local tiles at native resolution and how their scores combine with the global one.

    score = global_weight * global_score + (1 - global_weight) * local_score, where
    local_score aggregates the tile scores: "max" (most suspicious tile), "mean", or
    "top_k_mean" (mean of the top_k: less noisy than max, still sensitive to a pasted
    region covering a few tiles). tile_size 0 disables tiles (score = global_score).

    Huge images: at most max_tiles tiles are scored. When the stride grid needs more, the
    grid is thinned evenly over both axes (keeping the aspect ratio), so the tiles sample
    the whole image with gaps between them instead of covering only its top-left part.
    """

    tile_size: int = 224  # px at native resolution; 0 = no tiles
    stride: int = 224  # px between tile origins before thinning (== tile_size: no overlap)
    max_tiles: int = 16  # tiles per image at most (bounds compute for 100 MP uploads)
    local_aggregate: str = "top_k_mean"  # one of LOCAL_AGGREGATES
    top_k: int = 2  # tiles averaged by "top_k_mean"
    global_weight: float = 0.5  # weight of the global score in the combined score, 0..1

    def __post_init__(self) -> None:
        if self.tile_size < 0 or (self.tile_size and (self.stride <= 0 or self.max_tiles <= 0)):
            raise ValueError("tile_size >= 0; with tiles, stride and max_tiles must be positive")
        if self.local_aggregate not in LOCAL_AGGREGATES:
            raise ValueError(f"local_aggregate must be one of {LOCAL_AGGREGATES}")
        if not 0.0 <= self.global_weight <= 1.0 or self.top_k <= 0:
            raise ValueError("global_weight must be in [0, 1] and top_k positive")

    @property
    def enabled(self) -> bool:
        return self.tile_size > 0

    def describe(self) -> str:
        if not self.enabled:
            return "no tiles"
        return (
            f"tiles {self.tile_size}px stride {self.stride} max {self.max_tiles}, "
            f"local {self.local_aggregate}{f'({self.top_k})' if self.local_aggregate == 'top_k_mean' else ''}, "
            f"score = {self.global_weight:g} global + {1 - self.global_weight:g} local"
        )


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """Plain dict (lists, not tuples) for torch.save(weights_only-safe) and JSON."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(spec).items()}


def spec_from_dict(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)} (checkpoint from a newer version?)")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB from a Pillow RGB image or such an array."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {arr.dtype} {arr.shape}")
    return arr


def _colour(rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """HxWx3 float32 in [0, 1] in the declared colour space."""
    if spec.colour_space == "rgb":
        return rgb.astype(np.float32) * (1.0 / 255.0)
    hls = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HLS).astype(np.float32)
    hls[..., 1] *= spec.lightness_gain
    hls[..., 2] *= spec.saturation_gain
    np.clip(hls[..., 1:], 0.0, 255.0, out=hls[..., 1:])  # hue is untouched
    hls = np.rint(hls).astype(np.uint8)  # the paper edits the 8-bit OpenCV image
    if spec.colour_space == "hls":
        return hls.astype(np.float32) / _HLS_MAX
    return cv2.cvtColor(hls, cv2.COLOR_HLS2RGB).astype(np.float32) * (1.0 / 255.0)


def _to_tensor(rgb: np.ndarray, spec: PreprocessSpec) -> torch.Tensor:
    x = _colour(rgb, spec)
    x -= np.asarray(spec.mean, dtype=np.float32)
    x /= np.asarray(spec.std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    # Area interpolation when shrinking (anti-aliased); bilinear when enlarging.
    interp = cv2.INTER_AREA if size < max(h, w) else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)


def global_view(image: Image.Image | np.ndarray, spec: PreprocessSpec) -> torch.Tensor:
    """The whole image resized to the model input: (3, input_size, input_size) float32."""
    return _to_tensor(resize_square(as_array(image), spec.input_size), spec)


def tile_view(tile: Image.Image | np.ndarray, spec: PreprocessSpec) -> torch.Tensor:
    """One native-resolution crop, not resampled: (3, h, w) float32."""
    return _to_tensor(as_array(tile), spec)


@dataclasses.dataclass(frozen=True)
class TileGrid:
    rows: int
    cols: int
    ys: tuple[int, ...]  # top edge of each row of tiles, px
    xs: tuple[int, ...]  # left edge of each column of tiles, px
    tile_size: int  # px

    @property
    def count(self) -> int:
        return self.rows * self.cols


def _positions(extent: int, tile: int, count: int) -> tuple[int, ...]:
    if count == 1:
        return (max(0, (extent - tile) // 2),)  # one tile: the centre
    # Evenly spaced, first at 0 and last flush with the far edge, so edges are covered.
    return tuple(int(round(v)) for v in np.linspace(0, extent - tile, count))


def tile_grid(height: int, width: int, tiling: TilingSpec) -> TileGrid | None:
    """Where the tiles of a height x width image lie, at most tiling.max_tiles of them.

    None when tiles are disabled. An image smaller than a tile gets one tile, padded by
    edge replication in `tiles` (see there).
    """
    if not tiling.enabled:
        return None
    t = tiling.tile_size
    rows = max(1, math.ceil((height - t) / tiling.stride) + 1) if height > t else 1
    cols = max(1, math.ceil((width - t) / tiling.stride) + 1) if width > t else 1
    if rows * cols > tiling.max_tiles:
        # Thin evenly, keeping the grid's aspect: rows' * cols' <= max_tiles.
        f = math.sqrt(tiling.max_tiles / (rows * cols))
        rows, cols = max(1, int(rows * f)), max(1, int(cols * f))
        while rows * cols > tiling.max_tiles:  # int() can still overshoot when one side is 1
            if rows >= cols:
                rows -= 1
            else:
                cols -= 1
    return TileGrid(rows, cols, _positions(height, t, rows), _positions(width, t, cols), t)


def tiles(image: Image.Image | np.ndarray, grid: TileGrid, spec: PreprocessSpec) -> torch.Tensor:
    """The grid's tiles, row-major: (rows*cols, 3, tile, tile).

    Sides shorter than a tile are padded by replicating the edge pixels (replication adds
    no new high-frequency content for the residual filters to fire on, unlike reflection
    or zero padding).
    """
    rgb = as_array(image)
    t = grid.tile_size
    h, w = rgb.shape[:2]
    if h < t or w < t:
        rgb = cv2.copyMakeBorder(rgb, 0, max(0, t - h), 0, max(0, t - w), cv2.BORDER_REPLICATE)
    out = [tile_view(rgb[y : y + t, x : x + t], spec) for y in grid.ys for x in grid.xs]
    return torch.stack(out)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One image's model inputs: the global view, then the tiles row-major."""

    global_input: torch.Tensor  # (3, input_size, input_size)
    tile_inputs: torch.Tensor | None  # (rows*cols, 3, tile, tile), None without tiles
    grid: TileGrid | None
    width: int  # px of the decoded, orientation-corrected image
    height: int

    def items(self) -> list[torch.Tensor]:
        """The model inputs in order: [global, tile 0, tile 1, ...], each (3, H, W)."""
        return [self.global_input, *(self.tile_inputs if self.tile_inputs is not None else ())]


def prepare(image: Image.Image | np.ndarray, spec: PreprocessSpec, tiling: TilingSpec) -> Prepared:
    """Everything serving feeds the model for one image (training uses the same views)."""
    rgb = as_array(image)
    h, w = rgb.shape[:2]
    grid = tile_grid(h, w, tiling)
    local = tiles(rgb, grid, spec) if grid is not None else None
    return Prepared(global_view(rgb, spec), local, grid, w, h)
