"""Patch-feature shards for training the consistency embedder.

    python -m training.consistency_data --split train --canvases 8000 --out training/out/shards

Each canvas (training/canvas.py) gives up to PATCHES_PER_CANVAS patches at random
8-aligned positions (serving lays its grid on the image's 8x8 JPEG grid too); a shard is an
.npz of features (N, F) float32, the donor fraction per patch, the validity flag, and the
canvas index of every patch. Deterministic by (seed, canvas index), whatever the worker
count.
"""

from __future__ import annotations

import argparse
import multiprocessing
import pathlib
import time

import numpy as np

from services.synthesis import traces
from training.canvas import CanvasGenerator

PATCHES_PER_CANVAS = 96
SHARD_CANVASES = 250


def canvas_patches(gen: CanvasGenerator, i: int, spec: traces.SamplingSpec) -> dict[str, np.ndarray]:
    canvas = gen(i)
    h, w = canvas.image.shape[:2]
    p = spec.patch
    rng = np.random.default_rng([gen.seed, i, 11])
    n = PATCHES_PER_CANVAS
    ys = rng.integers(0, (h - p) // 8 + 1, n) * 8
    xs = rng.integers(0, (w - p) // 8 + 1, n) * 8
    patches = traces.cut_patches(canvas.image, ys, xs, p)
    frac = np.array([canvas.mask[y : y + p, x : x + p].mean() for y, x in zip(ys, xs)], np.float32)
    return {
        "features": traces.patch_features(patches),
        "fraction": frac,
        "valid": traces.valid_mask(patches, spec),
        "canvas": np.full(n, i, np.int32),
        "composite": np.full(n, canvas.composite, bool),
    }


def _shard(job: tuple[str, int, int, int, str]) -> str:
    split, seed, start, stop, out = job
    gen = CanvasGenerator(split, seed)
    spec = traces.SamplingSpec()
    parts = [canvas_patches(gen, i, spec) for i in range(start, stop)]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    path = pathlib.Path(out) / f"{split}-{seed}-{start:06d}.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]  # mypy: a **dict could fill allow_pickle
    return str(path)


def load_shards(paths: list[pathlib.Path]) -> dict[str, np.ndarray]:
    parts = [dict(np.load(p)) for p in sorted(paths)]
    if not parts:
        raise FileNotFoundError("no shards given")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("train", "val"), default="train")
    ap.add_argument("--canvases", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("training/out/shards"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for start in range(0, args.canvases, SHARD_CANVASES):
        stop = min(args.canvases, start + SHARD_CANVASES)
        if not (args.out / f"{args.split}-{args.seed}-{start:06d}.npz").exists():  # resumable
            jobs.append((args.split, args.seed, start, stop, str(args.out)))
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for k, path in enumerate(pool.imap_unordered(_shard, jobs), 1):
            print(f"[{time.monotonic() - started:7.1f}s] {k}/{len(jobs)} {path}", flush=True)


if __name__ == "__main__":
    main()
