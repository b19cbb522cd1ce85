"""ONNX Runtime vs torch eager: the synthesis network's forward pass, same inputs, same run.

    .venv/bin/python -m bench.bench_onnx            # shipped model and ResNet-50 at 224
    .venv/bin/python -m bench.bench_onnx --quick    # shorter windows, shipped model only

Both runtimes get the same threads (the service's torch_threads rule: every core this
process may use) and run float32 on the CPU, the checkpoint exported by
services.synthesis.onnx_runtime (what runtime=onnxruntime serves). Per model and batch
size (model inputs per pass) it prints inputs/s for each runtime and their ratio; the
cells run round-robin, each the best of --rounds short windows, so a burst of load on a
shared machine hurts both alike. No gRPC, no decoding: only what the runtime changes.

Then end to end: the synthesis service with the shipped model as its own process, once
per runtime (IMAGETRUST_RUNTIME), CONCURRENCY callers sending Detect with the sample JPEG
for a window, alternating runtimes for the rounds; images/s per runtime and the ratio.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import torch

from bench.bench_synthesis import make_checkpoint
from imagetrust.suite import free_port, stop_processes, wait_serving
from imagetrust.v1 import common_pb2, synthesis_pb2, synthesis_pb2_grpc
from services.synthesis import DEFAULT_MODEL_PATH
from services.synthesis.checkpoint import Checkpoint, load_checkpoint
from services.synthesis.onnx_runtime import OrtPredictor, input_shapes
from services.synthesis.predictor import Predictor, configure_cpu_threads

BATCHES = (1, 16, 64)  # model inputs per forward pass (64: the service's max_batch_size)
WINDOW_S = 1.5  # seconds per measurement window (quick: 0.5)
ROUNDS = 3  # windows per cell, best kept (quick: 2)
CONCURRENCY = 8  # Detect callers at once in the end-to-end part
SERVICE_WINDOW_S = 8.0  # seconds per end-to-end window (quick: 4)
SAMPLE = pathlib.Path(__file__).resolve().parent.parent / "imagetrust" / "samples" / "camera_original.jpg"


def _throughput(predictor: Predictor | OrtPredictor, shape: tuple[int, ...], batch: int, seconds: float) -> float:
    inputs = [torch.randn(shape)] * batch
    predictor.forward(inputs)  # warm: allocation and kernel choice for this shape
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        predictor.forward(inputs)
        n += batch
    return n / (time.perf_counter() - started)


def _compare(name: str, ckpt: Checkpoint, threads: int, window_s: float, rounds: int) -> None:
    shape = input_shapes(ckpt)[0]
    runtimes: dict[str, Predictor | OrtPredictor] = {
        "torch": Predictor(ckpt, torch.device("cpu"), "fp32"),
        "onnxruntime": OrtPredictor(ckpt, torch.device("cpu"), "fp32", threads),
    }
    best = {(rt, b): 0.0 for rt in runtimes for b in BATCHES}
    for _ in range(rounds):
        for batch in BATCHES:
            for rt, predictor in runtimes.items():
                best[rt, batch] = max(best[rt, batch], _throughput(predictor, shape, batch, window_s))
    print(f"\n{name}, input {shape}, {threads} threads, float32 CPU")
    print(f"  {'batch':>5}  {'torch in/s':>11}  {'onnxruntime in/s':>16}  {'ort / torch':>11}")
    for batch in BATCHES:
        t, o = best["torch", batch], best["onnxruntime", batch]
        print(f"  {batch:>5}  {t:>11.1f}  {o:>16.1f}  {o / t:>10.2f}x")


def _service_rate(runtime: str, threads: int, window_s: float) -> float:
    """Images/s of one synthesis process with this runtime under CONCURRENCY callers."""
    port = free_port()
    env = {
        **os.environ,
        "IMAGETRUST_RUNTIME": runtime,
        "IMAGETRUST_TORCH_THREADS": str(threads),
        "IMAGETRUST_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.synthesis",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            "-1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_serving(port, proc)
        request = synthesis_pb2.DetectRequest(image=common_pb2.Image(data=SAMPLE.read_bytes()))
        done = [0]
        lock = threading.Lock()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = synthesis_pb2_grpc.SynthesisDetectorStub(channel)
            stub.Detect(request, timeout=60)  # warm
            end = time.perf_counter() + window_s

            def caller() -> None:
                while time.perf_counter() < end:
                    stub.Detect(request, timeout=60)
                    with lock:
                        done[0] += 1

            started = time.perf_counter()
            workers = [threading.Thread(target=caller) for _ in range(CONCURRENCY)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return done[0] / (time.perf_counter() - started)
    finally:
        stop_processes([proc])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter windows, shipped model only")
    p.add_argument("--rounds", type=int, default=0, help=f"windows per cell (default {ROUNDS}; quick 2)")
    p.add_argument("--threads", type=int, default=0, help="threads for both runtimes (0: every core)")
    args = p.parse_args(argv)
    threads = configure_cpu_threads(args.threads)
    window_s = 0.5 if args.quick else WINDOW_S
    rounds = args.rounds or (2 if args.quick else ROUNDS)
    models = [("shipped model", load_checkpoint(DEFAULT_MODEL_PATH))]
    with tempfile.TemporaryDirectory() as tmp:
        if not args.quick:
            path = make_checkpoint("resnet50", pathlib.Path(tmp), paper=True)  # no weights can be downloaded
            models.append(("resnet50 @ 224 (random weights)", load_checkpoint(path)))
        for name, ckpt in models:
            _compare(name, ckpt, threads, window_s, rounds)
    service_window = 4.0 if args.quick else SERVICE_WINDOW_S
    rates: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
    for _ in range(rounds):
        for runtime in rates:
            rates[runtime].append(_service_rate(runtime, threads, service_window))
    t, o = max(rates["torch"]), max(rates["onnxruntime"])
    print(f"\nsynthesis service end to end ({SAMPLE.name}, {CONCURRENCY} callers, best of {rounds} windows):")
    print(f"  torch {t:.1f} img/s, onnxruntime {o:.1f} img/s: ort / torch {o / t:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
