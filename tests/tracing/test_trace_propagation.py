"""A traceparent sent to a real gateway shows its trace id in all three services' spans and
log lines.

The three services run as their own processes (`running_suite`), configured only by the
standard OTEL_* variables, and export over real OTLP/gRPC to a collector this test runs:
an OpenTelemetry TraceService server that keeps what it receives (bench/otlp_sink.py).
"""

from __future__ import annotations

import json
import pathlib
import time

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from bench.otlp_sink import OtlpSink
from imagetrust.client import Client, build_request
from imagetrust.suite import Ports, running_suite
from imagetrust.v1 import gateway_pb2_grpc
from services.common import tracing
from tests.helpers.paths import SAMPLES

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_SPAN_ID = 0x00F067AA0BA902B7
SPAN_WAIT_S = 20.0  # seconds for the batch processors to export (they flush every 100 ms here)


@pytest.fixture
def collector():
    sink = OtlpSink()
    port = sink.start()
    yield sink, port
    sink.stop()


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


SERVICES = ("imagetrust-gateway", "imagetrust-synthesis", "imagetrust-metadata")
EXPECTED_SPANS = {
    "imagetrust-gateway": {
        "imagetrust.v1.ImageTrust/Check",
        "validate",
        "fan-out",
        "backend synthesis",
        "backend metadata",
    },
    "imagetrust-synthesis": {
        "imagetrust.v1.SynthesisDetector/Detect",
        "decode+prepare",
        "synthesis queue wait",
        "synthesis forward pass",
    },
    "imagetrust-metadata": {
        "imagetrust.v1.MetadataAnalyzer/Analyze",
        "decode+analyze",
        "registry",
        "fingerprint",
        "registry lookup",
    },
}


def test_a_traceparent_reaches_every_service_span_and_log_line(collector, tmp_path: pathlib.Path):
    receiver, port = collector
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: export promptly for the test
        "IMAGETRUST_LOG_FORMAT": "json",
        "IMAGETRUST_REGISTRY_PATH": str(tmp_path / "registry.sqlite3"),
    }
    jpeg = (SAMPLES / "camera_original.jpg").read_bytes()
    traceparent = f"00-{TRACE_ID:032x}-{PARENT_SPAN_ID:016x}-01"
    with running_suite(Ports.free(), log_dir=str(tmp_path / "logs"), extra_env=env) as ports:
        with grpc.insecure_channel(f"127.0.0.1:{ports.gateway}") as channel:
            response = gateway_pb2_grpc.ImageTrustStub(channel).Check(
                build_request(jpeg, seller_id="s-1", register=True),
                timeout=30,
                metadata=(("traceparent", traceparent),),
            )
        assert not response.degraded, response.missing
        _wait_for(
            lambda: {s for s, _ in receiver.of_trace(TRACE_ID)} >= set(SERVICES),
            SPAN_WAIT_S,
            "spans of all three services",
        )
        _wait_for(
            lambda: all(
                EXPECTED_SPANS[s] <= {span.name for n, span in receiver.of_trace(TRACE_ID) if n == s} for s in SERVICES
            ),
            SPAN_WAIT_S,
            "every expected span",
        )

    spans = receiver.of_trace(TRACE_ID)
    by_id = {span.span_id: (service, span) for service, span in spans}
    # The gateway's server span is the child of the caller's span; each backend's server
    # span is the child of the gateway's client span for that backend.
    (gateway_root,) = [span for s, span in spans if span.name == "imagetrust.v1.ImageTrust/Check"]
    assert gateway_root.parent_span_id == PARENT_SPAN_ID.to_bytes(8, "big")
    for backend, method in (("synthesis", "SynthesisDetector/Detect"), ("metadata", "MetadataAnalyzer/Analyze")):
        (server,) = [span for s, span in spans if span.name == f"imagetrust.v1.{method}"]
        parent_service, parent = by_id[server.parent_span_id]
        assert (parent_service, parent.name) == ("imagetrust-gateway", f"backend {backend}")

    # Every service's log has lines of this call carrying the trace id and a span id.
    for name in ("gateway", "synthesis", "metadata"):
        lines = [
            json.loads(line)
            for line in (tmp_path / "logs" / f"{name}.log").read_text().splitlines()
            if line.startswith("{")
        ]
        traced = [entry for entry in lines if entry.get("trace_id") == f"{TRACE_ID:032x}"]
        assert traced, f"no {name} log line carries the trace id"
        assert all(len(entry["span_id"]) == 16 for entry in traced)
        assert any(entry["logger"] == "imagetrust.access" for entry in traced)


def test_the_sdk_sends_the_callers_trace_context(gateway_module):
    """Inside a caller's span (here a bare SpanContext, no SDK needed) the SDK adds its
    traceparent; the gateway (tracing off in-process) still answers normally."""
    span = NonRecordingSpan(SpanContext(TRACE_ID, PARENT_SPAN_ID, is_remote=False, trace_flags=TraceFlags(1)))
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        from imagetrust.client import _metadata

        sent = dict(_metadata(None, "r-1"))
        with Client(gateway_module.address) as client:
            assert client.check((SAMPLES / "camera_original.jpg").read_bytes()).request_id
    finally:
        otel_context.detach(token)
    assert sent["traceparent"] == f"00-{TRACE_ID:032x}-{PARENT_SPAN_ID:016x}-01"


def test_tracing_is_off_without_the_otel_variables():
    assert not tracing.wanted({})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "true"})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.enabled()  # this process never configured it: every tracing call is skipped
