"""Failure handling: killed, restarted, slow and absent backends give degraded verdicts,
never failed calls."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading

import grpc
import pytest

from imagetrust.client import Client
from imagetrust.suite import wait_serving
from imagetrust.v1 import common_pb2
from tests.helpers.metrics import metric_value
from tests.helpers.paths import REPO
from tests.helpers.ports import free_port
from tests.helpers.scripted_synthesis import ScriptedSynthesis
from tests.helpers.servers import start_server, wait_until

LOAD_THREADS = 4  # concurrent callers in the kill tests
RECOVERY_TIMEOUT_S = 20.0  # seconds; the gateway reconnects within max_reconnect_backoff (2 s)


def start_metadata_process(port: int, tmp_path) -> subprocess.Popen:
    """The metadata service as its own process, so it can be killed with SIGKILL."""
    env = {**os.environ, "IMAGETRUST_REGISTRY_PATH": str(tmp_path / "registry.sqlite3")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.metadata",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            "-1",
            "--log-format",
            "text",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_serving(port, proc, timeout_s=60)
    return proc


class Load:
    """Callers checking images in a loop; every outcome is recorded."""

    def __init__(self, target: str, image: bytes, threads: int = LOAD_THREADS) -> None:
        self.client = Client(target, timeout=10)
        self.image = image
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures: list[str] = []
        self.results: list[tuple[int, tuple[str, ...]]] = []  # (sequence, missing)
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                response = self.client.check(self.image)
                with self.lock:
                    self.results.append((len(self.results), tuple(response.missing)))
            except grpc.RpcError as exc:
                with self.lock:
                    self.failures.append(f"{exc.code().name}: {exc.details()}")

    def mark(self) -> int:
        with self.lock:
            return len(self.results)

    def since(self, mark: int) -> list[tuple[str, ...]]:
        with self.lock:
            return [missing for _, missing in self.results[mark:]]

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        self.client.close()


@pytest.mark.slow
def test_metadata_killed_mid_run_gives_degraded_verdicts_then_recovers(server_factory, jpeg, tmp_path):
    port = free_port()
    metadata = start_metadata_process(port, tmp_path)
    synthesis = server_factory("synthesis")
    gateway = server_factory("gateway", synthesis_addr=synthesis.address, metadata_addr=f"127.0.0.1:{port}")
    load = Load(gateway.address, jpeg)
    try:
        wait_until(lambda: load.mark() >= 20, 30, "checks before the kill")
        metadata.send_signal(signal.SIGKILL)
        metadata.wait(10)
        killed = load.mark()
        wait_until(lambda: sum("metadata" in m for m in load.since(killed)) >= 20, 30, "degraded verdicts")
        assert metric_value(gateway.metrics_url, "imagetrust_gateway_backend_up", backend="metadata") == 0.0
        metadata = start_metadata_process(port, tmp_path)  # same port
        restarted = load.mark()
        wait_until(lambda: any(m == () for m in load.since(restarted)), RECOVERY_TIMEOUT_S, "recovery")
        wait_until(
            lambda: metric_value(gateway.metrics_url, "imagetrust_gateway_backend_up", backend="metadata") == 1.0,
            RECOVERY_TIMEOUT_S,
            "backend_up back to 1",
        )
    finally:
        load.finish()
        metadata.kill()
        metadata.wait(10)
    assert load.failures == []
    outcomes = collections.Counter(load.since(0))
    assert outcomes[("metadata",)] >= 20 and outcomes[()] >= 20
    skipped = metric_value(
        gateway.metrics_url, "imagetrust_gateway_backend_calls_total", backend="metadata", outcome="SKIPPED_DOWN"
    )
    assert skipped and skipped > 0  # known down: skipped at once, not waited for


@pytest.mark.slow
def test_synthesis_stopped_and_restarted_on_the_same_port(server_factory, jpeg):
    metadata = server_factory("metadata")
    synthesis = start_server("synthesis")
    port = synthesis.runtime.port
    gateway = server_factory("gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address)
    load = Load(gateway.address, jpeg, threads=2)
    try:
        wait_until(lambda: load.mark() >= 10, 30, "checks before the stop")
        synthesis.stop(grace_s=0)  # in-flight calls are cancelled, not drained
        stopped = load.mark()
        wait_until(lambda: sum("synthesis" in m for m in load.since(stopped)) >= 10, 30, "degraded verdicts")
        synthesis = server_factory("synthesis", port=port)
        restarted = load.mark()
        wait_until(lambda: any(m == () for m in load.since(restarted)), RECOVERY_TIMEOUT_S, "recovery")
    finally:
        load.finish()
    assert load.failures == []


def test_slow_backend_is_cut_at_the_budget(server_factory, scripted, jpeg):
    metadata = server_factory("metadata")
    slow = scripted(delay_s=3.0, score=0.9)
    gateway = server_factory("gateway", synthesis_addr=slow.address, metadata_addr=metadata.address)
    with Client(gateway.address) as client:
        response = client.check(jpeg, budget_ms=300)
    assert response.degraded and list(response.missing) == ["synthesis"]
    assert response.HasField("metadata") and not response.HasField("synthesis")
    reason = next(r for r in response.reasons if r.code == "BACKEND_UNAVAILABLE")
    assert reason.evidence["cause"] == "no answer within its budget of 300 ms"
    assert slow.calls == 1


def test_the_callers_deadline_bounds_the_budget(server_factory, scripted, jpeg):
    metadata = server_factory("metadata")
    slow = scripted(delay_s=3.0, score=0.9)
    gateway = server_factory("gateway", synthesis_addr=slow.address, metadata_addr=metadata.address)
    with Client(gateway.address, timeout=0.8) as client:
        # No budget_ms: the default (3 s) is cut to the 0.8 s deadline minus the reserve
        # (10% of it), so a degraded verdict arrives in time instead of DEADLINE_EXCEEDED.
        response = client.check(jpeg)
    assert response.degraded and list(response.missing) == ["synthesis"]
    cause = next(r for r in response.reasons if r.code == "BACKEND_UNAVAILABLE").evidence["cause"]
    budget_ms = int(cause.split("budget of ")[1].split(" ms")[0])
    assert 500 <= budget_ms <= 720


def test_synthesis_cap_inside_the_budget(server_factory, scripted, jpeg):
    metadata = server_factory("metadata")
    slow = scripted(delay_s=1.0, score=0.9)
    gateway = server_factory(
        "gateway", synthesis_addr=slow.address, metadata_addr=metadata.address, synthesis_budget_ms=150
    )
    with Client(gateway.address) as client:
        response = client.check(jpeg, budget_ms=2000)
    assert list(response.missing) == ["synthesis"]
    causes = [r.evidence["cause"] for r in response.reasons if r.code == "BACKEND_UNAVAILABLE"]
    assert causes == ["no answer within its budget of 150 ms"]


def test_slow_but_in_time_backend_is_used(server_factory, scripted, jpeg):
    metadata = server_factory("metadata")
    slow = scripted(delay_s=0.2, score=0.7)
    gateway = server_factory("gateway", synthesis_addr=slow.address, metadata_addr=metadata.address)
    with Client(gateway.address) as client:
        response = client.check(jpeg, budget_ms=2000)
    assert not response.degraded
    assert response.synthesis.score == pytest.approx(0.7)


def test_absent_backend_is_skipped_while_down_and_used_once_it_appears(server_factory, jpeg):
    metadata = server_factory("metadata")
    port = free_port()  # nothing listens here yet
    gateway = server_factory("gateway", synthesis_addr=f"127.0.0.1:{port}", metadata_addr=metadata.address)
    up = lambda: metric_value(gateway.metrics_url, "imagetrust_gateway_backend_up", backend="synthesis")  # noqa: E731
    wait_until(lambda: up() == 0.0, 10, "synthesis marked down")
    with Client(gateway.address) as client:
        response = client.check(jpeg)
        assert list(response.missing) == ["synthesis"] and response.HasField("metadata")
        cause = next(r for r in response.reasons if r.code == "BACKEND_UNAVAILABLE").evidence["cause"]
        assert cause.startswith("down: health probe")
        late = ScriptedSynthesis(score=0.3, port=port)
        try:
            wait_until(lambda: not client.check(jpeg).degraded, RECOVERY_TIMEOUT_S, "the late backend to be used")
            assert up() == 1.0 and late.calls >= 1
        finally:
            late.stop()


def test_both_backends_down_is_a_degraded_review_not_an_error(server_factory, jpeg):
    gateway = server_factory(
        "gateway", synthesis_addr=f"127.0.0.1:{free_port()}", metadata_addr=f"127.0.0.1:{free_port()}"
    )
    with Client(gateway.address) as client:
        response = client.check(jpeg)
    assert response.degraded and sorted(response.missing) == ["metadata", "synthesis"]
    assert response.decision == common_pb2.REVIEW  # by the nothing-checked rule


def test_an_image_a_backend_calls_invalid_is_invalid_even_when_degraded(server_factory, scripted, jpeg):
    rejecting = scripted(invalid=True)
    gateway = server_factory("gateway", synthesis_addr=rejecting.address, metadata_addr=f"127.0.0.1:{free_port()}")
    with Client(gateway.address) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.check(jpeg)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "synthesis: cannot decode the jpeg image (truncated or corrupt?)"


def test_a_not_serving_replica_leaves_the_rotation_and_returns(server_factory, scripted, jpeg):
    metadata = server_factory("metadata")
    draining, healthy = scripted(score=0.1), scripted(score=0.1)
    gateway = server_factory(
        "gateway", synthesis_addr=f"{draining.address},{healthy.address}", metadata_addr=metadata.address
    )
    with Client(gateway.address) as client:
        wait_until(
            lambda: not client.check(jpeg).degraded and draining.calls and healthy.calls, 10, "both replicas used"
        )
        draining.set_serving(False)  # as a pod does on SIGTERM
        wait_until(lambda: _only_healthy_gets_calls(client, jpeg, draining), 10, "draining replica out of rotation")
        draining.set_serving(True)
        before = draining.calls
        wait_until(lambda: not client.check(jpeg).degraded and draining.calls > before, 10, "replica back in rotation")


def _only_healthy_gets_calls(client, jpeg, draining) -> bool:
    before = draining.calls
    responses = [client.check(jpeg) for _ in range(6)]
    assert not any(r.degraded for r in responses)  # the other replica serves meanwhile
    return draining.calls == before
