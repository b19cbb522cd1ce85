"""Graceful SIGTERM, on a real server process: in-flight calls finish, new calls are
refused, and the process exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imagetrust.v1 import common_pb2, synthesis_pb2, synthesis_pb2_grpc
from tests.conftest import REPO, free_port

IN_FLIGHT_S = 2.0  # seconds the in-flight call takes
GRACE_S = 10.0  # seconds the server allows in-flight calls on SIGTERM


def _wait_serving(address: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.1)
    raise AssertionError("server never became SERVING")


def test_sigterm_drains_in_flight_calls_refuses_new_ones_and_exits_zero() -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.common.echo_service", str(port), str(GRACE_S)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        _wait_serving(address)
        result: dict = {}
        with grpc.insecure_channel(address) as channel:
            detect = synthesis_pb2_grpc.SynthesisDetectorStub(channel).Detect

            def in_flight() -> None:
                try:
                    result["response"] = detect(
                        synthesis_pb2.DetectRequest(image=common_pb2.Image(data=b"x", filename=f"sleep:{IN_FLIGHT_S}")),
                        timeout=30,
                    )
                except grpc.RpcError as exc:  # recorded, asserted below
                    result["error"] = exc

            worker = threading.Thread(target=in_flight)
            worker.start()
            time.sleep(0.5)  # the call is now inside the servicer
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # the server is draining

            with grpc.insecure_channel(address) as fresh:
                try:
                    synthesis_pb2_grpc.SynthesisDetectorStub(fresh).Detect(
                        synthesis_pb2.DetectRequest(image=common_pb2.Image(data=b"x")), timeout=2
                    )
                    refused = None
                except grpc.RpcError as exc:
                    refused = exc
            worker.join(30)

        assert "error" not in result, f"in-flight call failed during drain: {result.get('error')}"
        assert result["response"].score == 0.25
        assert refused is not None, "a new call was accepted while draining"
        assert refused.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        assert proc.wait(GRACE_S + 10) == 0
        log = proc.stdout.read().decode()
        assert '"msg": "echo draining"' in log and '"msg": "echo stopped"' in log
    finally:
        if proc.poll() is None:
            proc.kill()
