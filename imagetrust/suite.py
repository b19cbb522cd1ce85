"""Runs the three services as child processes on one machine (`imagetrust up`, `demo`).

Each service is its own process, as in production, so `up` exercises the same code paths
as a Kubernetes deployment: separate metrics registries, health, and gRPC between them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# Startup deadline, seconds: synthesis imports torch and warms its model first.
READY_TIMEOUT_S = 180.0
POLL_INTERVAL_S = 0.2  # seconds between health probes while waiting
STOP_TIMEOUT_S = 30.0  # seconds a child may take to drain after SIGTERM

BACKENDS = ("metadata", "synthesis")


class ServiceExited(RuntimeError):
    """A service process ended before it turned SERVING (a port in use, a bad setting, Ctrl-C)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass(frozen=True)
class Ports:
    gateway: int = 50051
    metadata: int = 50052
    synthesis: int = 50053
    gateway_metrics: int = 9091
    metadata_metrics: int = 9092
    synthesis_metrics: int = 9093

    @classmethod
    def free(cls) -> Ports:
        return cls(*(free_port() for _ in range(6)))

    def grpc(self, name: str) -> int:
        return getattr(self, name)

    def metrics(self, name: str) -> int:
        return getattr(self, f"{name}_metrics")


def wait_serving(port: int, proc: subprocess.Popen, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Blocks until grpc.health.v1 on port says SERVING; raises if the process died."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceExited(f"service on port {port} exited with code {proc.returncode}")
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(POLL_INTERVAL_S)
    raise TimeoutError(f"service on port {port} not SERVING after {timeout_s:.0f} s")


def stop_processes(procs, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every service (they drain in parallel), then wait; kill what outlives timeout_s."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()


def _service_args(name: str, ports: Ports) -> list[str]:
    args = [
        sys.executable,
        "-m",
        f"services.{name}",
        "--port",
        str(ports.grpc(name)),
        "--metrics-port",
        str(ports.metrics(name)),
    ]
    if name == "gateway":
        args += ["--synthesis-addr", f"127.0.0.1:{ports.synthesis}", "--metadata-addr", f"127.0.0.1:{ports.metadata}"]
    return args


def _log_to(log_dir: str | None, name: str, opened: list[IO[bytes]]) -> dict[str, Any]:
    """Popen stdout/stderr: the terminal, or <log_dir>/<name>.log (appended to `opened`)."""
    if log_dir is None:
        return {}
    os.makedirs(log_dir, exist_ok=True)
    log = open(os.path.join(log_dir, f"{name}.log"), "ab")  # noqa: SIM115 - closed by running_suite
    opened.append(log)
    return {"stdout": log, "stderr": log}


@contextlib.contextmanager
def running_suite(ports: Ports, log_dir: str | None = None, extra_env: dict[str, str] | None = None) -> Iterator[Ports]:
    """Starts metadata, synthesis and gateway; stops them (SIGTERM, drain) on exit."""
    env = {**os.environ, **(extra_env or {})}
    env.setdefault("IMAGETRUST_HOST", "127.0.0.1")  # local use: do not listen on every interface
    procs: dict[str, subprocess.Popen] = {}
    logs: list[IO[bytes]] = []
    try:
        # The backends start together (synthesis's torch import dominates); the gateway
        # only once both are SERVING, so its health watcher never starts by marking a
        # still-loading backend down and the first checks are complete, not degraded.
        for stage in (BACKENDS, ("gateway",)):
            for name in stage:
                procs[name] = subprocess.Popen(_service_args(name, ports), env=env, **_log_to(log_dir, name, logs))
            for name in stage:
                wait_serving(ports.grpc(name), procs[name])
        yield ports
    finally:
        stop_processes(procs.values())
        for f in logs:
            f.close()
