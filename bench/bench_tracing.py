"""Tracing off vs on, side by side in one run, the three real services as processes.

1. End to end: one caller makes sequential Check calls with the same JPEG (each with a
   W3C traceparent) against the suite started without the OTEL_* variables (tracing off,
   the default), then against the suite exporting over OTLP/gRPC to a local collector
   (bench/otlp_sink.py) with every span sampled. The two suites alternate for --rounds
   rounds, so load drift hits both; p50 and mean are printed with their ratio.
2. The off path alone: what tracing adds to a call when it is off (the interceptor's and
   the gateway's `enabled()` tests, the no-op span context managers, the log formatter's
   id lookup), timed in-process per call, next to the off suite's p50 Check.

    .venv/bin/python -m bench.bench_tracing [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import timeit

import grpc

from bench.otlp_sink import OtlpSink
from imagetrust.client import build_request
from imagetrust.suite import Ports, running_suite
from imagetrust.v1 import gateway_pb2_grpc

SAMPLE = "imagetrust/samples/camera_original.jpg"
WARMUP_CALLS = 10  # calls per suite before timing: channels, caches, the model's first passes
CALL_TIMEOUT_S = 30.0  # seconds per call
FLUSH_WAIT_S = 3.0  # seconds for the last spans to reach the collector before counting them


def _run(ports: Ports, calls: int, data: bytes) -> list[float]:
    request = build_request(data, seller_id="bench")
    times = []
    with grpc.insecure_channel(f"127.0.0.1:{ports.gateway}") as channel:
        stub = gateway_pb2_grpc.ImageTrustStub(channel)
        for i in range(WARMUP_CALLS + calls):
            traceparent = f"00-{i + 1:032x}-{i + 1:016x}-01"
            started = time.perf_counter()
            response = stub.Check(request, timeout=CALL_TIMEOUT_S, metadata=(("traceparent", traceparent),))
            elapsed = time.perf_counter() - started
            if response.degraded:
                raise RuntimeError(f"degraded verdict: {list(response.missing)}")
            if i >= WARMUP_CALLS:
                times.append(elapsed)
    return times


def _suite(calls: int, data: bytes, env: dict[str, str]) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**env, "IMAGETRUST_REGISTRY_PATH": f"{tmp}/registry.sqlite3", "IMAGETRUST_LOG_LEVEL": "WARNING"}
        with running_suite(Ports.free(), log_dir=f"{tmp}/logs", extra_env=env) as ports:
            return _run(ports, calls, data)


def _off_path_us() -> float:
    """Microseconds per call of every tracing step a call runs when tracing is off."""
    from services.common import tracing

    assert not tracing.enabled()
    tracer = tracing.tracer("bench")
    metadata = (("x-request-id", "r"),)

    def one_call() -> None:
        tracing.enabled()  # the interceptor's test
        for name in ("validate", "fan-out", "backend synthesis", "backend metadata"):
            with tracing.span(tracer, name):
                pass
        tracing.inject(metadata)
        tracing.inject(metadata)
        for _ in range(3):  # the log formatter's lookup, per line (three lines per call, one per service)
            tracing.current_ids()

    n = 20_000
    return timeit.timeit(one_call, number=n) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    parser.add_argument("--calls", type=int, default=0, help="timed calls per suite and round")
    parser.add_argument("--rounds", type=int, default=0, help="off/on alternations")
    args = parser.parse_args(argv)
    calls = args.calls or (40 if args.quick else 150)
    rounds = args.rounds or (1 if args.quick else 2)
    with open(SAMPLE, "rb") as f:
        data = f.read()

    sink = OtlpSink()
    port = sink.start()
    on_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_INSECURE": "true"}
    off: list[float] = []
    on: list[float] = []
    try:
        for r in range(rounds):
            off += _suite(calls, data, {})
            on += _suite(calls, data, on_env)
            print(
                f"round {r + 1}/{rounds}: off p50 {statistics.median(off) * 1000:.2f} ms, "
                f"on p50 {statistics.median(on) * 1000:.2f} ms",
                flush=True,
            )
        time.sleep(FLUSH_WAIT_S)
        spans = sink.count()
    finally:
        sink.stop()

    off_p50, on_p50 = statistics.median(off), statistics.median(on)
    off_mean, on_mean = statistics.fmean(off), statistics.fmean(on)
    off_path = _off_path_us()
    print(f"\nCheck, real services, {len(off)} calls each (sample {SAMPLE}):")
    print(f"  tracing off: p50 {off_p50 * 1000:7.2f} ms  mean {off_mean * 1000:7.2f} ms")
    print(
        f"  tracing on : p50 {on_p50 * 1000:7.2f} ms  mean {on_mean * 1000:7.2f} ms   "
        f"({spans} spans exported, {spans / max(1, len(on) + WARMUP_CALLS * rounds):.1f} per call)"
    )
    print(f"  on / off   : p50 x{on_p50 / off_p50:.3f}  mean x{on_mean / off_mean:.3f}")
    print(f"off path in-process: {off_path:.2f} us per call = {off_path / (off_p50 * 1e6) * 100:.3f}% of the off p50")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
