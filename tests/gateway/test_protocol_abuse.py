"""Protocol-level abuse of the real servers on loopback (not image content): hostile request
fields, malformed messages, abandoned streams. Every call must get a clear status, nothing
may log an error with a traceback, and the gauges must come back to rest."""

from __future__ import annotations

import logging
import re
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import timestamp_pb2

from imagetrust.client import Client, build_request
from imagetrust.v1 import (
    common_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    metadata_pb2,
    metadata_pb2_grpc,
    synthesis_pb2,
    synthesis_pb2_grpc,
)
from services.common.limits import MAX_ID_CHARS
from tests.helpers.checkpoints import make_checkpoint
from tests.helpers.servers import RunningServer, start_server, wait_until

HUGE_ID_CHARS = 100_000  # characters: a registered sighting this size poisoned later answers
REST_TIMEOUT_S = 5.0  # seconds for gauges to settle after a call ends


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Iterator[dict[str, RunningServer]]:
    """metadata, synthesis (tiny random model: cheap on 2 cores) and the gateway."""
    checkpoint = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    make_checkpoint(checkpoint, "tiny")
    metadata = start_server("metadata")
    synthesis = start_server("synthesis", model_path=str(checkpoint), torch_threads=1)
    gateway = start_server("gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address)
    yield {"gateway": gateway, "metadata": metadata, "synthesis": synthesis}
    for server in (gateway, synthesis, metadata):
        server.stop()


@pytest.fixture
def no_errors_logged(caplog) -> Iterator[None]:
    """Fails the test if any server logged at ERROR (an unhandled error's traceback)."""
    caplog.set_level(logging.WARNING)
    yield
    errors = [f"{r.name}: {r.getMessage()[:300]}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors


def gauge(server: RunningServer, name: str, labels: str = "") -> float:
    """The gauge's value; 0 for a labelled one never touched (Prometheus only exports a
    label set once it was used)."""
    body = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", body, re.M)
    return float(match.group(1)) if match else 0.0


def assert_at_rest(suite: dict[str, RunningServer]) -> None:
    """No call in flight on any service and nothing queued for the model."""
    for name, service, method in (
        ("gateway", "imagetrust.v1.ImageTrust", "Check"),
        ("gateway", "imagetrust.v1.ImageTrust", "CheckStream"),
        ("metadata", "imagetrust.v1.MetadataAnalyzer", "Analyze"),
        ("synthesis", "imagetrust.v1.SynthesisDetector", "Detect"),
    ):
        labels = f'{{grpc_method="{method}",grpc_service="{service}"}}'
        wait_until(
            lambda name=name, labels=labels: gauge(suite[name], "grpc_server_in_flight", labels) == 0,
            REST_TIMEOUT_S,
            f"{name} {method} in flight back to 0",
        )
    wait_until(
        lambda: gauge(suite["synthesis"], "imagetrust_synthesis_queue_depth") == 0,
        REST_TIMEOUT_S,
        "synthesis queue depth back to 0",
    )


def check(suite, request: gateway_pb2.CheckRequest, timeout: float = 30) -> gateway_pb2.CheckResponse:
    with suite["gateway"].channel() as channel:
        return gateway_pb2_grpc.ImageTrustStub(channel).Check(request, timeout=timeout)


def analyze(suite, request: metadata_pb2.AnalyzeRequest) -> metadata_pb2.AnalyzeResponse:
    with suite["metadata"].channel() as channel:
        return metadata_pb2_grpc.MetadataAnalyzerStub(channel).Analyze(request, timeout=30)


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


# --- hostile request fields ---------------------------------------------------------------


@pytest.mark.parametrize("field", ["seller_id", "listing_id", "conversation_id", "platform"])
def test_oversize_context_ids_are_refused_and_never_registered(suite, no_errors_logged, jpeg, field):
    # Registered, megabyte ids were quoted back in every later match of the photo: every
    # answer for it grew past the clients' 4 MiB receive limit (RESOURCE_EXHAUSTED for all).
    huge = common_pb2.Context(**{field: "x" * HUGE_ID_CHARS})
    error = refused(
        lambda: check(suite, gateway_pb2.CheckRequest(image=common_pb2.Image(data=jpeg), context=huge, register=True))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"context.{field} is {HUGE_ID_CHARS} characters; the limit is {MAX_ID_CHARS}" in error.details()
    error = refused(
        lambda: analyze(
            suite, metadata_pb2.AnalyzeRequest(image=common_pb2.Image(data=jpeg), context=huge, register=True)
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and f"context.{field}" in error.details()
    # Nothing was stored: a later sighting of the same photo under another seller sees no one.
    at_limit = common_pb2.Context(seller_id="s" * MAX_ID_CHARS)
    answer = analyze(suite, metadata_pb2.AnalyzeRequest(image=common_pb2.Image(data=jpeg), context=at_limit))
    assert not answer.registry.matches and answer.registry.available
    assert_at_rest(suite)


def test_oversize_client_ref_is_refused_per_item(suite, no_errors_logged, jpeg):
    ok = gateway_pb2.CheckRequest(image=common_pb2.Image(data=jpeg), client_ref="r" * MAX_ID_CHARS)
    huge = gateway_pb2.CheckRequest(image=common_pb2.Image(data=jpeg), client_ref="r" * HUGE_ID_CHARS)
    with suite["gateway"].channel() as channel:
        batch = gateway_pb2_grpc.ImageTrustStub(channel).CheckBatch(
            gateway_pb2.CheckBatchRequest(requests=[ok, huge]), timeout=30
        )
    assert not batch.responses[0].HasField("error") and batch.responses[0].client_ref == ok.client_ref
    assert batch.responses[1].error.code_name == "INVALID_ARGUMENT"
    assert "client_ref is" in batch.responses[1].error.message


@pytest.mark.parametrize("seconds, nanos", [(2**62, 0), (-(2**62), 0), (1_700_000_000, -1), (1_700_000_000, 10**9)])
def test_out_of_range_upload_time_is_invalid_argument_not_internal(suite, no_errors_logged, jpeg, seconds, nanos):
    # It used to reach datetime conversion: ValueError -> INTERNAL with a traceback on
    # metadata, and a silently degraded verdict through the gateway.
    context = common_pb2.Context(uploaded_at=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))
    analyze_request = metadata_pb2.AnalyzeRequest(image=common_pb2.Image(data=jpeg), context=context)
    error = refused(lambda: analyze(suite, analyze_request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "context.uploaded_at" in error.details()
    error = refused(lambda: check(suite, gateway_pb2.CheckRequest(image=common_pb2.Image(data=jpeg), context=context)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "context.uploaded_at" in error.details()
    # The service keeps serving, undegraded.
    assert not check(suite, gateway_pb2.CheckRequest(image=common_pb2.Image(data=jpeg))).degraded


# --- malformed messages -------------------------------------------------------------------


def not_utf8_request(jpeg: bytes) -> bytes:
    """A request (CheckRequest, AnalyzeRequest and DetectRequest all carry Image as field 1)
    whose image.filename is not UTF-8: no protobuf client would send it; a broken one can."""
    image = common_pb2.Image(data=jpeg, filename="AB").SerializeToString()
    assert image.endswith(b"\x12\x02AB")  # filename, field 2, 2 bytes, last
    image = image[:-2] + b"\xff\xfe"
    return b"\x0a" + _varint(len(image)) + image


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


@pytest.mark.parametrize(
    "server, method",
    [
        ("gateway", "/imagetrust.v1.ImageTrust/Check"),
        ("gateway", "/imagetrust.v1.ImageTrust/CheckBatch"),
        ("metadata", "/imagetrust.v1.MetadataAnalyzer/Analyze"),
        ("synthesis", "/imagetrust.v1.SynthesisDetector/Detect"),
    ],
)
def test_malformed_messages_are_invalid_argument(suite, no_errors_logged, jpeg, server, method):
    # gRPC answers a request its deserializer cannot parse with UNKNOWN and logs a traceback.
    with suite[server].channel() as channel:
        raw = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        for payload in (b"\xff\xff\xff", not_utf8_request(jpeg)):
            if method.endswith("CheckBatch"):
                payload = b"\x0a" + _varint(len(payload)) + payload  # as the batch's first item
            error = refused(lambda payload=payload: raw(payload, timeout=10))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (payload[:8], error)
            assert "not a valid message" in error.details()
    assert_at_rest(suite)


def test_a_malformed_message_in_a_stream_ends_it_with_invalid_argument(suite, no_errors_logged, jpeg):
    good = gateway_pb2.CheckRequest(image=common_pb2.Image(data=jpeg), client_ref="first").SerializeToString()
    with suite["gateway"].channel() as channel:
        raw = channel.stream_stream(
            "/imagetrust.v1.ImageTrust/CheckStream",
            request_serializer=None,
            response_deserializer=gateway_pb2.CheckResponse.FromString,
        )
        call = raw(iter([good, not_utf8_request(jpeg), good]), timeout=30)
        assert next(call).client_ref == "first"  # what came before is answered
        with pytest.raises(grpc.RpcError) as info:
            next(call)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid message" in info.value.details()
    assert_at_rest(suite)


# --- abandoned streams --------------------------------------------------------------------

STREAM_ITEMS = 2000  # small items: far more than a 64 KiB receive window holds answers to
SETTLE_S = 0.3  # seconds without a new response written: the gateway's writes are blocked


def test_a_stream_cancelled_while_its_writes_wait_ends_cancelled_and_cleans_up(suite, no_errors_logged, jpeg):
    # A client that stops reading, then cancels: gRPC used to abandon the servicer's generator
    # at its yield; it was closed later from another task, so the call was counted OK and
    # resetting its request id there logged "Task exception was never retrieved" (ValueError).
    request = gateway_pb2.CheckRequest(
        image=common_pb2.Image(data=jpeg),
        client_ref="r" * MAX_ID_CHARS,
        options=gateway_pb2.CheckOptions(skip_synthesis=True, skip_metadata=True),  # validation only
    )
    labels = '{grpc_method="CheckStream",grpc_service="imagetrust.v1.ImageTrust",grpc_type="bidi_stream"}'
    cancelled = labels.replace("{", '{grpc_code="CANCELLED",', 1)
    before = gauge(suite["gateway"], "grpc_server_handled_total", cancelled)
    sent = lambda: gauge(suite["gateway"], "grpc_server_msg_sent_total", labels)  # noqa: E731
    first = sent()
    # No BDP probing: the client's receive window stays at its initial 64 KiB.
    with suite["gateway"].channel(**{"grpc.http2.bdp_probe": 0}) as channel:
        call = gateway_pb2_grpc.ImageTrustStub(channel).CheckStream(iter([request] * STREAM_ITEMS), timeout=60)
        last = -1.0
        while (now := sent()) != last:  # until the gateway stops getting its writes through
            last = now
            time.sleep(SETTLE_S)
        assert 0 < last - first < STREAM_ITEMS, (first, last)  # some answered, then blocked
        call.cancel()
        wait_until(
            lambda: gauge(suite["gateway"], "grpc_server_handled_total", cancelled) == before + 1,
            REST_TIMEOUT_S,
            "the stream counted as CANCELLED",
        )
    assert_at_rest(suite)


# --- the SDK --------------------------------------------------------------------------------


def test_sdk_timeout_zero_is_an_expired_deadline_not_the_default(suite, no_errors_logged, jpeg):
    # `timeout or self.timeout` made timeout=0 mean the 10 s default: a caller passing on what
    # was left of its own deadline got a call that outlived it.
    with Client(suite["gateway"].address) as client:
        assert refused(lambda: client.check(jpeg, timeout=0)).code() == grpc.StatusCode.DEADLINE_EXCEEDED
        try:
            batch = client.check_batch([build_request(jpeg)], timeout=0)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        else:  # the gateway's prompt answer can beat the client's own timer on loopback
            assert [r.error.code_name for r in batch] == ["DEADLINE_EXCEEDED"]
        assert not client.check(jpeg).degraded  # None still means the client's default
    assert_at_rest(suite)


# --- cancellations and deadlines at rest -----------------------------------------------------

CANCEL_AFTER_S = (0.0, 0.005, 0.02)  # seconds after sending: before, during and after the backend calls


def test_cancellations_and_spent_deadlines_leave_every_gauge_at_rest(suite, no_errors_logged, jpeg):
    request = gateway_pb2.CheckRequest(image=common_pb2.Image(data=jpeg))
    with suite["gateway"].channel() as channel:
        stub = gateway_pb2_grpc.ImageTrustStub(channel)
        for delay in CANCEL_AFTER_S:
            calls = [
                stub.Check.future(request, timeout=30),
                stub.CheckBatch.future(gateway_pb2.CheckBatchRequest(requests=[request] * 4), timeout=30),
            ]
            stream = stub.CheckStream(iter([request] * 4), timeout=30)
            time.sleep(delay)
            for call in (*calls, stream):
                call.cancel()
        for timeout in (0.0, 0.001):  # spent, or spent before the backends could answer
            assert refused(lambda t=timeout: stub.Check(request, timeout=t)).code() == grpc.StatusCode.DEADLINE_EXCEEDED
    with suite["synthesis"].channel() as channel:
        detect = synthesis_pb2_grpc.SynthesisDetectorStub(channel).Detect
        assert (
            refused(lambda: detect(synthesis_pb2.DetectRequest(image=request.image), timeout=0.001)).code()
            == grpc.StatusCode.DEADLINE_EXCEEDED
        )
    assert_at_rest(suite)
    assert not check(suite, request).degraded  # and everything still serves
