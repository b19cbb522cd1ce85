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
from tests.helpers.paths import REPO
from tests.helpers.ports import free_port

IN_FLIGHT_S = 2.0  # seconds the in-flight call takes
GRACE_S = 10.0  # seconds the server allows in-flight calls on SIGTERM


def _wait_serving(address: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                time.sleep(0.1)
    raise AssertionError("server never became SERVING")


def test_sigterm_drains_in_flight_calls_refuses_new_ones_and_exits_zero() -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.common.echo_service", str(port), str(GRACE_S)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
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


WATCHERS = 20  # health Watch streams open when the drain starts (a gateway holds one per backend)
CANCEL_GAP_S = 0.005  # seconds between the watchers going away, while the server drains


def _watch_then_leave(port: int, draining: threading.Event, ready: threading.Event) -> None:
    """Opens WATCHERS Watch streams, then cancels them one by one once the drain began."""
    channels = [
        grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(WATCHERS)
    ]
    try:
        watches = [health_pb2_grpc.HealthStub(c).Watch(health_pb2.HealthCheckRequest()) for c in channels]
        for watch in watches:
            next(watch)  # SERVING
        ready.set()
        next(watches[0])  # NOT_SERVING: the server is draining, held open by these streams
        draining.set()
        for watch in watches:
            time.sleep(CANCEL_GAP_S)
            watch.cancel()
    finally:
        for channel in channels:
            channel.close()


def test_stop_leaves_no_call_task_for_the_loop_teardown_to_cancel(caplog) -> None:
    """When stop() returned, the calls that ended during the drain could still have a gRPC task
    waiting one loop iteration for its end; asyncio.run (what `imagetrust serve` runs
    serve_until_signal in) then cancelled it, and gRPC logged each as an ERROR "Exception not
    handled by _handle_exceptions" with a traceback, plus the traceback again as raw stderr
    lines (1 shutdown in 4 of a metadata server whose gateway went away with it)."""
    import asyncio
    import logging

    from services.common.config import ServerConfig, load
    from services.common.server import ServerRuntime
    from tests.common.echo_service import EchoService

    config = load(ServerConfig, {}, host="127.0.0.1", port=0, metrics_port=-1, log_format="text", grace_s=GRACE_S)

    async def serve_then_stop() -> list:
        runtime = ServerRuntime(EchoService(), config)
        await runtime.start()
        ready, draining = threading.Event(), threading.Event()
        client = threading.Thread(target=_watch_then_leave, args=(runtime.port, draining, ready))
        client.start()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, ready.wait, GRACE_S)
        await runtime.stop()  # waits for the watchers: they are calls in flight
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await loop.run_in_executor(None, client.join, GRACE_S)
        return left

    with caplog.at_level(logging.ERROR):
        left = asyncio.run(serve_then_stop())
    assert left == [], f"tasks pending when stop() returned (since finished): {left}"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
