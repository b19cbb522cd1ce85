"""Deterministic composite / authentic samples, generated on the fly from BSDS500 photos.

Sample i depends only on (seed, i): three independent random streams per index decide
(1) which photo and whether it is a composite, (2) how it is composited, (3) how it is
post-processed. Stream (3) is drawn identically for authentic and composite samples.
Even indices are composites and odd indices authentic, so any prefix is balanced.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from training import bsds, compose, postprocess

# "train": the paper's segment pastes and the TRAIN post-processing (the validation test set
# and the model shipped first); "diverse": every training method and TRAIN_DIVERSE;
# "heldout": the other forger, for the second test set only.
GENERATORS = ("train", "diverse", "heldout")
_METHODS = {"train": compose.SEGMENT_METHODS, "diverse": compose.TRAIN_METHODS, "heldout": compose.HELDOUT_METHODS}
_PROFILES = {"train": postprocess.TRAIN, "diverse": postprocess.TRAIN_DIVERSE, "heldout": postprocess.HELDOUT}
_STREAM_CHOICE, _STREAM_COMPOSE, _STREAM_POST = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Sample:
    data: bytes  # the encoded file, as a seller would upload it
    image: np.ndarray  # decoded RGB uint8 HxWx3 (what `data` decodes to)
    mask: np.ndarray  # bool HxW, True on tampered pixels (all False for authentic)
    target: float  # tampered-area fraction = mask.mean()
    label: int  # 1 composite, 0 authentic
    method: str  # compositing method, "authentic" for label 0
    photo: str  # destination photo name
    post: postprocess.Params


class CompositeGenerator:
    """Sample i of an endless, reproducible stream of composites and authentic photos."""

    def __init__(
        self, photos: list[bsds.Photo], *, seed: int, generator: str = "train", methods: tuple[str, ...] | None = None
    ) -> None:
        if generator not in GENERATORS:
            raise ValueError(f"unknown generator {generator!r}; expected one of {GENERATORS}")
        if len(photos) < 2:
            raise ValueError("compositing needs at least two photos")
        self.photos = list(photos)
        self.seed = seed
        self.generator = generator
        self.methods = methods or _METHODS[generator]
        self.profile = _PROFILES[generator]

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, index, stream])

    def __getitem__(self, index: int) -> Sample:
        choice = self._rng(index, _STREAM_CHOICE)
        # Destination photos cycle so that every photo appears as often as authentic and as
        # composite background: photo identity carries no label information.
        dst_i = (index // 2) % len(self.photos)
        src_i = int(choice.integers(len(self.photos) - 1))
        src_i += src_i >= dst_i  # any photo but the destination
        method_i = int(choice.integers(len(self.methods)))
        label = 1 if index % 2 == 0 else 0
        post = postprocess.draw(self.profile, self._rng(index, _STREAM_POST))

        dst, dst_labels = bsds.load(self.photos[dst_i])
        if label:
            src, src_labels = bsds.load(self.photos[src_i])
            method = self.methods[method_i]
            rng = self._rng(index, _STREAM_COMPOSE)
            if self.generator != "heldout":
                image, mask = compose.compose_train(method, dst, dst_labels, src, src_labels, rng)
            else:
                image, mask = compose.compose_heldout(method, dst, src, rng)
        else:
            method, image, mask = "authentic", dst, np.zeros(dst.shape[:2], bool)
        data, decoded, mask = postprocess.apply(image, mask, post)
        return Sample(data, decoded, mask, float(mask.mean()), label, method, self.photos[dst_i].name, post)
