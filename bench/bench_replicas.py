"""Scale-out on one machine: Check throughput with 1, 2 and 3 synthesis replicas behind the
gateway's round_robin channel.

    python -m bench.bench_replicas            # 10 s per replica count
    python -m bench.bench_replicas --quick    # 3 s per replica count

Each synthesis replica is its own process on its own port; the gateway is started per
replica count with a multi-address target (ipv4:127.0.0.1:p1,127.0.0.1:p2,...: gRPC's
ipv4 resolver, then round_robin over the addresses, exactly what a headless Service's
DNS answer gives it in Kubernetes). Requests skip metadata so the synthesis tier is what
is measured. Besides throughput, each replica's own /metrics shows how many Detect calls
it served: the balancing is checked, not assumed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator

from prometheus_client.parser import text_string_to_metric_families

from bench.bench_loadgen import LoadSpec, Result, default_payloads, print_comparison, run_load
from imagetrust.suite import STOP_TIMEOUT_S, free_port, wait_serving

REPLICA_COUNTS = (1, 2, 3)  # synthesis processes behind the gateway, one run each
CONCURRENCY = 16  # calls in flight: enough to keep 3 replicas busy
DEFAULT_DURATION_S = 10.0  # seconds per replica count
QUICK_DURATION_S = 3.0  # seconds per replica count with --quick
METRICS_TIMEOUT_S = 5.0  # seconds to scrape a replica's /metrics


class Service:
    """One service process on free ports (the container entry point: python -m services.X)."""

    def __init__(self, name: str, log_dir: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port, self.metrics_port = free_port(), free_port()
        self._log = open(os.path.join(log_dir, f"{name}-{self.port}.log"), "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                f"services.{name}",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--metrics-port",
                str(self.metrics_port),
                *args,
            ],
            env={**os.environ, "IMAGETRUST_LOG_LEVEL": "WARNING", **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait(self) -> Service:
        wait_serving(self.port, self.proc)
        return self

    def detect_ok(self) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=METRICS_TIMEOUT_S) as r:
            text = r.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "grpc_server_handled"
            for sample in family.samples
            if sample.name.endswith("_total")
            and sample.labels.get("grpc_method") == "Detect"
            and sample.labels.get("grpc_code") == "OK"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


@contextlib.contextmanager
def started(*services: Service) -> Iterator[tuple[Service, ...]]:
    try:
        for s in services:
            s.wait()
        yield services
    finally:
        for s in services:
            s.stop()


def round_robin_target(replicas: tuple[Service, ...]) -> str:
    return "ipv4:" + ",".join(f"127.0.0.1:{s.port}" for s in replicas)


async def measure(
    replicas: tuple[Service, ...], log_dir: str, payloads: list[bytes], duration_s: float
) -> tuple[Result, list[float]]:
    # No metadata backend: requests skip it, and the gateway never calls it.
    gateway = Service(
        "gateway", log_dir, "--synthesis-addr", round_robin_target(replicas), "--metadata-addr", "127.0.0.1:1"
    )
    with started(gateway):
        before = [r.detect_ok() for r in replicas]
        spec = LoadSpec(concurrency=CONCURRENCY, duration_s=duration_s, skip_first=CONCURRENCY)
        result = await run_load(f"127.0.0.1:{gateway.port}", payloads, spec)
        served = [r.detect_ok() - b for r, b in zip(replicas, before)]
    return result, served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DURATION_S:.0f} s per replica count")
    parser.add_argument("--duration", type=float, help=f"seconds per replica count (default {DEFAULT_DURATION_S})")
    args = parser.parse_args(argv)
    duration = args.duration or (QUICK_DURATION_S if args.quick else DEFAULT_DURATION_S)
    payloads = default_payloads(skip_metadata=True)
    print(
        f"machine: {os.cpu_count()} CPU(s) visible; concurrency {CONCURRENCY}, {duration:.0f} s per replica count",
        flush=True,
    )
    rows: list[tuple[str, Result]] = []
    with tempfile.TemporaryDirectory(prefix="imagetrust-replicas-") as log_dir:
        replicas = tuple(
            Service("synthesis", log_dir, env={"IMAGETRUST_DEVICE": "cpu"}) for _ in range(max(REPLICA_COUNTS))
        )
        with started(*replicas):
            for n in REPLICA_COUNTS:
                result, served = asyncio.run(measure(replicas[:n], log_dir, payloads, duration))
                share = " ".join(f"{s:.0f}" for s in served)
                print(
                    f"{n} replica(s): {result.rps:.1f} RPS, p50 {result.percentile_ms(50):.1f} ms, "
                    f"p99 {result.percentile_ms(99):.1f} ms, Detect calls per replica: {share}, "
                    f"status {dict(result.codes)}",
                    flush=True,
                )
                rows.append((f"{n} synthesis replica(s)", result))
    print_comparison(rows, rows[0][1])
    return 0 if all(r.ok for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
