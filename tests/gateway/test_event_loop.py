"""One upload's header read never holds the gateway's event loop.

The gateway reads every upload's header before calling a backend (format, declared size).
That read is Python code in Pillow whose cost the upload decides: JPEG fill bytes are read
one at a time, ~0.25 s for the 1 MiB the structure guard lets through. Done on the event
loop, it stalled every other call and every health probe meanwhile: with four such uploads
at once a health Check took 0.5 s at the median and 1.2 s at worst (past Kubernetes' 1 s
probe timeout); the read now runs on a worker thread.
"""

from __future__ import annotations

import io
import statistics
import threading
import time

import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from imagetrust.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

# Bytes of 0xFF fill after SOI: just under the structure guard's 1 MiB, so the upload is
# accepted and Pillow's header reader walks all of it.
FILL_BYTES = 1_000_000
LOADERS = 2  # callers sending such uploads back to back
HEALTH_CHECKS = 10  # health Checks timed while they do
HEALTH_GAP_S = 0.03  # seconds between health Checks
UNREACHABLE = "127.0.0.1:1"  # backends: never called, both are skipped per request
CALL_TIMEOUT_S = 30  # seconds


def _slow_header_jpeg() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(out, "JPEG")
    data = out.getvalue()
    return data[:2] + b"\xff" * FILL_BYTES + data[2:]


def test_slow_header_reads_do_not_hold_up_health_checks(server_factory) -> None:
    gateway = server_factory("gateway", synthesis_addr=UNREACHABLE, metadata_addr=UNREACHABLE)
    request = gateway_pb2.CheckRequest(
        image=common_pb2.Image(data=_slow_header_jpeg()),
        options=gateway_pb2.CheckOptions(skip_synthesis=True, skip_metadata=True),
    )
    with gateway.channel() as channel:
        check = gateway_pb2_grpc.ImageTrustStub(channel).Check
        health = health_pb2_grpc.HealthStub(channel).Check
        started = time.perf_counter()
        assert not check(request, timeout=CALL_TIMEOUT_S).degraded  # accepted: a valid JPEG
        alone_s = time.perf_counter() - started  # one header read here, plus a round trip

        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                check(request, timeout=CALL_TIMEOUT_S)

        loaders = [threading.Thread(target=load) for _ in range(LOADERS)]
        for thread in loaders:
            thread.start()
        try:
            time.sleep(alone_s)  # header reads are under way
            waits = []
            for _ in range(HEALTH_CHECKS):
                started = time.perf_counter()
                health(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
                waits.append(time.perf_counter() - started)
                time.sleep(HEALTH_GAP_S)
        finally:
            stop.set()
            for thread in loaders:
                thread.join(CALL_TIMEOUT_S)
    # On the loop, a probe waited for the read in progress (half of one at the median, and
    # more behind queued ones); off it, a probe waits for a GIL switch or two (a few ms).
    assert statistics.median(waits) < alone_s / 4, (
        f"health Check median {statistics.median(waits) * 1000:.0f} ms while one slow upload "
        f"takes {alone_s * 1000:.0f} ms: the header read holds the event loop"
    )


DEADLINE_S = 3.0  # seconds: the caller's deadline for the check that waits behind slow uploads
QUEUED_S = 1.0  # seconds of slow header reads queued ahead of it, at least
SLOW_BACKEND_S = 30.0  # seconds: synthesis never answers within the deadline


def test_time_waiting_for_the_header_read_comes_out_of_the_budget(server_factory, scripted, jpeg) -> None:
    """Header reads queue for one thread; the backends' budget is what is left of the caller's
    deadline after that wait, so a slow backend still gives a degraded verdict in time instead
    of the caller's DEADLINE_EXCEEDED."""
    synthesis = scripted(delay_s=SLOW_BACKEND_S)
    gateway = server_factory("gateway", synthesis_addr=synthesis.address, metadata_addr=UNREACHABLE)
    slow = gateway_pb2.CheckRequest(
        image=common_pb2.Image(data=_slow_header_jpeg()),
        options=gateway_pb2.CheckOptions(skip_synthesis=True, skip_metadata=True),
    )
    with gateway.channel() as channel:
        check = gateway_pb2_grpc.ImageTrustStub(channel).Check
        started = time.perf_counter()
        check(slow, timeout=CALL_TIMEOUT_S)
        queued = int(QUEUED_S / (time.perf_counter() - started)) + 1
        ahead = [check.future(slow, timeout=CALL_TIMEOUT_S) for _ in range(queued)]
        time.sleep(0.05)  # they reach the gateway first
        request = gateway_pb2.CheckRequest(
            image=common_pb2.Image(data=jpeg), options=gateway_pb2.CheckOptions(skip_metadata=True)
        )
        verdict = check(request, timeout=DEADLINE_S)
        for future in ahead:
            future.result()
    assert verdict.degraded and list(verdict.missing) == ["synthesis"]
