"""Training views: what one training example shows the model, made with the SERVING code.

Serving feeds a model two kinds of input per image (services.synthesis.preprocess.prepare):
the global view (whole image squashed to input_size) and native-resolution tiles. Training
feeds it the same two kinds, built by the same functions (global_view, tiles), so there is
no training-only preprocessing that could drift from serving.

Targets: "binary" is the paper's label (1 composite, 0 authentic). "soft" is continuous,
from the tampered-area fraction f of the view: min(1, min(f, 1 - f) / SOFT_SATURATION),
i.e. how much SPLICE EVIDENCE the view holds. A view with >= 5 % of its pixels pasted
(and >= 5 % original) shows both sides of a paste boundary and is fully a composite;
slivers fall off linearly (1 %: 0.2), the regression-style score of the bank lab's
article. A tile the paste does not reach gets 0, and so does a tile lying wholly INSIDE a
large pasted object: on its own it is an authentic-looking piece of another photo, and
labelling it 1 taught the first (128 px, f-only target) run nothing in 240 steps (label
noise); the image score comes from the top tiles (the rule calibration picks; max for the
shipped model), so boundary tiles carry the decision.
Composite tiles are centred on the paste BOUNDARY (with jitter) most of the time.
"""

from __future__ import annotations

import numpy as np
import torch

from services.synthesis import preprocess
from training import dataset, postprocess

SOFT_SATURATION = 0.05  # tampered fraction of a view at which the soft target reaches 1
CENTRE_ON_MASK_P = 0.7  # probability that a composite's tile is centred near the paste boundary
TARGETS = ("binary", "soft")


def soft_target(fraction: float) -> float:
    return float(min(1.0, min(fraction, 1.0 - fraction) / SOFT_SATURATION))


class ViewDataset(torch.utils.data.Dataset):
    """Item i: view g = offset + i of generator sample g // views_per_sample -> (input, target, label).

    offset moves the window over the endless generator: a recipe that wants fresh
    composites every epoch sets offset = epoch * len(self); the paper's recipe keeps 0
    (a fixed dataset, as the paper pickled one). views_per_sample > 1 takes several views
    (different tiles, or the global view) of one generated sample: making a composite costs
    more CPU than a forward/backward pass of the forensic net on a tile. Consecutive items
    share a sample, so read them in order (the generator is already random per index).
    """

    def __init__(
        self,
        generator: dataset.CompositeGenerator,
        length: int,
        *,
        spec: preprocess.PreprocessSpec,
        tile_size: int,
        global_p: float,
        target: str,
        recompress_p: float = 0.0,
        flip: bool = False,
        seed: int = 0,
        views_per_sample: int = 1,
    ) -> None:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}")
        if global_p < 1.0 and tile_size <= 0:
            raise ValueError("tile views need tile_size > 0 (or global_p = 1)")
        self.generator, self.length, self.spec = generator, length, spec
        self.tile_size, self.global_p, self.target = tile_size, global_p, target
        self.recompress_p, self.flip, self.seed = recompress_p, flip, seed
        self.views_per_sample = max(1, views_per_sample)
        self.offset = 0
        self._last: tuple[int, dataset.Sample] | None = None  # per worker process

    def _sample(self, index: int) -> dataset.Sample:
        if self._last is None or self._last[0] != index:
            self._last = (index, self.generator[index])
        return self._last[1]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index = self.offset + i
        sample = self._sample(index // self.views_per_sample)
        rng = np.random.default_rng([self.seed, index, 7])  # view stream, apart from the generator's
        image, mask = sample.image, sample.mask
        # Draws are unconditional (same count for both labels), as in the generator.
        recompress, quality = rng.random() < self.recompress_p, int(rng.integers(60, 96))
        use_global, flip = rng.random() < self.global_p, self.flip and rng.random() < 0.5
        if recompress:  # a second JPEG generation (re-uploads), for both labels alike
            image = postprocess.decode(postprocess.encode(image, "cv2-jpeg", quality))
        if flip:
            image, mask = image[:, ::-1], mask[:, ::-1]
        image = np.ascontiguousarray(image)
        if use_global:
            x = preprocess.global_view(image, self.spec)
            fraction = float(mask.mean())
        else:
            x, fraction = self._tile(image, np.ascontiguousarray(mask), rng)
        y = float(sample.label) if self.target == "binary" else soft_target(fraction)
        return x, torch.tensor(y, dtype=torch.float32), torch.tensor(sample.label, dtype=torch.float32)

    def _tile(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        t = self.tile_size
        h, w = mask.shape
        on_mask = rng.random() < CENTRE_ON_MASK_P
        # Boundary pixels of the paste: in the mask with a 4-neighbour outside it.
        inner = mask.copy()
        inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
        ys, xs = np.nonzero(mask & ~inner)
        if on_mask and ys.size:
            k = int(rng.integers(ys.size))
            cy, cx = ys[k] + int(rng.integers(-t // 4, t // 4 + 1)), xs[k] + int(rng.integers(-t // 4, t // 4 + 1))
            y0, x0 = int(np.clip(cy - t // 2, 0, max(0, h - t))), int(np.clip(cx - t // 2, 0, max(0, w - t)))
        else:
            y0, x0 = int(rng.integers(0, max(0, h - t) + 1)), int(rng.integers(0, max(0, w - t) + 1))
        grid = preprocess.TileGrid(1, 1, (y0,), (x0,), t)
        x = preprocess.tiles(image, grid, self.spec)[0]
        # The fraction over the tile as the model sees it (padding, if any, is authentic).
        fraction = float(mask[y0 : y0 + t, x0 : x0 + t].sum()) / float(t * t)
        return x, fraction
