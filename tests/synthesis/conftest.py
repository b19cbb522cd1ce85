"""Synthesis fixtures: small randomly initialised checkpoints (real models, untrained,
labelled placeholder) and images encoded in every supported format."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.checkpoints import make_checkpoint

torch.set_num_threads(1)  # 2 shared cores: keep test servers from oversubscribing


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """tiny CNN, 64 px global view and 64 px tiles, up to 16 tiles."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    make_checkpoint(path, "tiny")
    return path


@pytest.fixture(scope="session")
def forensic_checkpoint(tmp_path_factory):
    """The forensic architecture (random weights), 256 px views and tiles."""
    path = tmp_path_factory.mktemp("ckpt") / "forensic.pt"
    make_checkpoint(path, "forensic")
    return path


def photo(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1), (xx + yy) % 256], axis=-1)
    noise = rng.integers(-6, 7, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def encode(arr: np.ndarray, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **params)
    return buf.getvalue()


def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A valid PNG header declaring width x height (3.6 GP): refused before decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: (  # noqa: E731
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    )
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
