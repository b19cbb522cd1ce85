"""BSDS500 photos and their human segment label maps (the raw material for composites)."""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib

import cv2
import numpy as np

# ../shared/datasets/bsds500 next to the repository; IMAGETRUST_BSDS overrides it.
DEFAULT_ROOT = pathlib.Path(
    os.environ.get("IMAGETRUST_BSDS", pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bsds500")
)
SPLITS = ("train", "val")


@dataclasses.dataclass(frozen=True)
class Photo:
    name: str
    image_path: pathlib.Path
    segments_path: pathlib.Path


def list_photos(split: str, root: pathlib.Path | str = DEFAULT_ROOT) -> list[Photo]:
    """Photos of one BSDS split, sorted by name so every run sees the same order."""
    if split not in SPLITS:
        raise ValueError(f"unknown BSDS split {split!r}; expected one of {SPLITS}")
    base = pathlib.Path(root) / split
    images = sorted((base / "images").glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"no BSDS500 images under {base / 'images'} (set IMAGETRUST_BSDS)")
    return [Photo(p.stem, p, base / "segments" / f"{p.stem}.png") for p in images]


def split_photos(photos: list[Photo], val_fraction: float, seed: int) -> tuple[list[Photo], list[Photo]]:
    """Splits by PHOTO (not by sample), so no photo is on both sides of the split."""
    order = np.random.default_rng(seed).permutation(len(photos))
    n_val = max(1, round(len(photos) * val_fraction))
    val = sorted((photos[i] for i in order[:n_val]), key=lambda p: p.name)
    train = sorted((photos[i] for i in order[n_val:]), key=lambda p: p.name)
    return train, val


@functools.lru_cache(maxsize=512)  # 300 photos x ~0.6 MB: the whole dataset fits in memory
def _load(image_path: pathlib.Path, segments_path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    labels = cv2.imread(str(segments_path), cv2.IMREAD_UNCHANGED)
    if bgr is None or labels is None:
        raise FileNotFoundError(f"cannot read {image_path} or {segments_path}")
    if labels.shape != bgr.shape[:2]:
        raise ValueError(f"{segments_path}: label map {labels.shape} does not match image {bgr.shape[:2]}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb.setflags(write=False)
    labels.setflags(write=False)
    return rgb, labels


def load(photo: Photo) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 HxWx3, segment ids uint16 HxW); read-only, cached."""
    return _load(photo.image_path, photo.segments_path)
