"""Model forward passes alone: throughput by batch size and precision, on this machine.

    .venv/bin/python -m bench.bench_forward            # shipped model and ResNet-50 at 224
    .venv/bin/python -m bench.bench_forward --quick    # shorter runs

What dynamic batching can buy is bounded by how much faster the model runs per input in
a batch than alone. On a GPU that is 10-100x; on a CPU it can be nothing (oneDNN already
keeps the cores busy at batch 1, and large batches fall out of cache). This prints, per
model and precision, inputs/s at batch 1, 4, 16 and 64 and the ratio to batch 1, measured
round-robin in one run (each cell is the best of --rounds short windows, so a burst of
load on a shared machine hurts every cell alike). Precision bf16 runs only where the
service would accept it (services.synthesis.predictor: native bf16 in oneDNN, or CUDA).

No gRPC, no decoding: bench_synthesis measures the service end to end.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import torch

from bench.bench_synthesis import make_checkpoint
from services.synthesis import DEFAULT_MODEL_PATH
from services.synthesis.checkpoint import load_checkpoint
from services.synthesis.predictor import Predictor, configure_cpu_threads, cpu_bf16_supported, resolve_device

BATCHES = (1, 4, 16, 64)  # model inputs per forward pass
WINDOW_S = 1.5  # seconds per measurement window (quick: 0.5)
ROUNDS = 3  # windows per cell, best kept (quick: 2)


def _throughput(predictor: Predictor, shape: tuple[int, ...], batch: int, seconds: float) -> float:
    inputs = [torch.randn(shape)] * batch
    predictor.forward(inputs)  # warm: allocation and kernel choice for this shape
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        predictor.forward(inputs)
        n += batch
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short windows (well under a minute)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: every core)")
    p.add_argument("--model-path", default=str(DEFAULT_MODEL_PATH), help="the served model (default: shipped)")
    p.add_argument("--no-resnet", action="store_true", help="skip ResNet-50 at 224 (the paper's model)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    threads = configure_cpu_threads(args.threads) if device.type == "cpu" else 0
    window, rounds = (0.5, 2) if args.quick else (WINDOW_S, ROUNDS)

    shipped = load_checkpoint(args.model_path)
    size = shipped.preprocessing.input_size
    models = [(f"shipped {shipped.arch} @ {size}", shipped, (3, size, size))]
    tmp = tempfile.TemporaryDirectory(prefix="bench_forward_")
    if not args.no_resnet:
        path = make_checkpoint("resnet50", pathlib.Path(tmp.name), paper=True)  # no weights can be downloaded
        models.append(("resnet50 @ 224 (random weights)", load_checkpoint(path), (3, 224, 224)))
    precisions = ["fp32"]
    if device.type == "cuda" or cpu_bf16_supported():
        precisions.append("bf16")
    print(
        f"device {device}{f', {threads} torch threads' if threads else ''}; "
        f"CPU bf16 native: {cpu_bf16_supported()}; best of {rounds} x {window:.1f} s per cell"
    )

    failed = False
    for name, ckpt, shape in models:
        predictors = {prec: Predictor(ckpt, device, prec) for prec in precisions}
        best = {(prec, b): 0.0 for prec in precisions for b in BATCHES}
        for _ in range(rounds):  # round-robin: load drift hits every cell alike
            for prec, pred in predictors.items():
                for b in BATCHES:
                    best[prec, b] = max(best[prec, b], _throughput(pred, shape, b, window))
        print(f"\n{name}")
        print(f"  {'precision':<9} " + " ".join(f"{f'batch {b}':>16}" for b in BATCHES))
        for prec in precisions:
            base = best[prec, 1]
            cells = [f"{best[prec, b]:7.1f}/s {best[prec, b] / base:5.2f}x" for b in BATCHES]
            print(f"  {prec:<9} " + " ".join(f"{c:>16}" for c in cells))
        if "bf16" in precisions:
            ratios = ", ".join(f"batch {b} {best['bf16', b] / best['fp32', b]:.2f}x" for b in BATCHES)
            print(f"  bf16 / fp32: {ratios}")
        failed |= any(v <= 0 for v in best.values())
    tmp.cleanup()
    print("\nratios per row are inputs/s at that batch / inputs/s at batch 1 (what batching can buy at most)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
