"""Consistency model cost per photo against one full JPEG decode of the same file.

    .venv/bin/python -m bench.bench_synthesis_cost             # shipped model, 12 MP + 7+ MP files
    .venv/bin/python -m bench.bench_synthesis_cost --quick     # 2 files, 2 rounds

For each file, in interleaved rounds (so load swings hit both sides alike): one full
libjpeg-turbo decode (`cv2.imdecode`, one OpenCV thread), and the whole scoring path as the
service runs it on one image: the service's decoder (EXIF orientation applied), the patch
grid, validity and trace features, the embedder forward pass (torch, float32, one thread),
and the consistency scorer. Printed: per file the best-of-rounds times and their ratio, the
median ratio (target: <= 8x), the split of the path into its steps, and the peak Python
allocation of one request (tracemalloc) for a 12 MP and a 48 MP photo (bounded: the grid
never exceeds max_patches, whatever the size).

Files: 12 MP JPEGs made from camera photos (Lanczos to 4000x3000, q92 4:2:0, like a phone),
and the camera-photos originals of 7 MP and more.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import statistics
import time
import tracemalloc

import cv2
import numpy as np
import torch
from PIL import Image

from services.common.imaging import decode_rgb
from services.synthesis import DEFAULT_MODEL_PATH
from services.synthesis.checkpoint import load_checkpoint
from services.synthesis.consistency import prepare_patches, score_patches

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets" / "camera-photos"
MAX_PIXELS = 120_000_000  # the service's default decode limit, pixels


def phone_like(path: pathlib.Path, size: tuple[int, int] = (4000, 3000)) -> bytes:
    rgb = Image.open(path).convert("RGB")
    if rgb.height > rgb.width:
        size = (size[1], size[0])
    buf = io.BytesIO()
    rgb.resize(size, Image.Resampling.LANCZOS).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def files(n_phone: int, n_large: int) -> list[tuple[str, bytes]]:
    photos = sorted(SHARED.glob("*.jpg"))
    out = [(f"12MP from {p.name}", phone_like(p)) for p in photos[:: max(1, len(photos) // max(1, n_phone))][:n_phone]]
    large = []
    for p in photos:
        small = cv2.imread(str(p), cv2.IMREAD_REDUCED_GRAYSCALE_8)
        if small is None:
            continue
        h, w = small.shape[:2]
        if h * w * 64 >= 7_000_000:
            large.append((p.name, p.read_bytes()))
    return out + large[:n_large]


def score_once(data: bytes, ckpt, model) -> dict[str, float]:
    t0 = time.perf_counter()
    rgb = np.asarray(decode_rgb(data, MAX_PIXELS))
    t1 = time.perf_counter()
    prep = prepare_patches(rgb, ckpt.consistency)
    t2 = time.perf_counter()
    with torch.inference_mode():
        out = model(torch.from_numpy(prep.inputs)).numpy() if len(prep.inputs) else prep.inputs
    t3 = time.perf_counter()
    score_patches(out, prep.valid, prep.grid, ckpt.consistency)
    t4 = time.perf_counter()
    return {"decode": t1 - t0, "features": t2 - t1, "model": t3 - t2, "score": t4 - t3, "total": t4 - t0}


def peak_mb(data: bytes, ckpt, model) -> float:
    tracemalloc.start()
    score_once(data, ckpt, model)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL_PATH))
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per file (best of)")
    ap.add_argument("--phone", type=int, default=4, help="12 MP phone-like files")
    ap.add_argument("--large", type=int, default=6, help="camera originals of 7 MP and more")
    ap.add_argument("--quick", action="store_true", help="2 rounds, 2 phone-like files, no originals")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.phone, args.large = 2, 2, 0
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    ckpt = load_checkpoint(args.model)
    if ckpt.consistency is None:
        raise SystemExit(f"{args.model} is not a consistency checkpoint")
    model = ckpt.build("cpu")
    ratios: list[float] = []
    steps: dict[str, list[float]] = {k: [] for k in ("decode", "features", "model", "score", "total")}
    print(f"model {ckpt.model_version}; {args.rounds} interleaved rounds per file, best of each side")
    for name, data in files(args.phone, args.large):
        score_once(data, ckpt, model)  # warm caches
        dec, tot = [], []
        parts = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            dec.append(time.perf_counter() - t)
            parts.append(score_once(data, ckpt, model))
            tot.append(parts[-1]["total"])
        best = parts[int(np.argmin(tot))]
        ratio = min(tot) / min(dec)
        ratios.append(ratio)
        for k in steps:
            steps[k].append(best[k] / min(dec))
        h, w = np.asarray(decode_rgb(data, MAX_PIXELS)).shape[:2]
        print(
            f"  {name:40s} {h * w / 1e6:4.1f} MP  decode {min(dec) * 1e3:6.1f} ms  "
            f"scored {min(tot) * 1e3:7.1f} ms  = {ratio:4.2f}x"
        )
    print(f"median scored / one decode: {statistics.median(ratios):.2f}x (target <= 8x)")
    print("split (median, in decodes): " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in steps.items()))
    base = files(1, 0)[0][1]
    big = Image.open(io.BytesIO(base)).convert("RGB").resize((8000, 6000))
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    print(
        f"peak allocation of one request: 12 MP {peak_mb(base, ckpt, model):.0f} MB, "
        f"48 MP {peak_mb(buf.getvalue(), ckpt, model):.0f} MB (decoded pixels included)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
