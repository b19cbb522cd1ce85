"""google.rpc.Status details on real servers: ErrorInfo reasons, RetryInfo, BadRequest, and
the SDK's retry on RetryInfo.

Real gateway and backends on loopback; the retry tests use a real ImageTrust server on the
shared runtime whose first calls raise the domain error under test.
"""

from __future__ import annotations

import asyncio
import io
import time

import grpc
import pytest
from grpc import aio
from PIL import Image

from imagetrust.client import AsyncClient, Client, build_request
from imagetrust.errors import error_details
from imagetrust.v1 import (
    common_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    metadata_pb2,
    metadata_pb2_grpc,
    synthesis_pb2,
    synthesis_pb2_grpc,
)
from services.common import errors
from services.common.config import ServerConfig, load
from services.common.server import Service
from tests.gateway.test_check_e2e import png_declaring
from tests.helpers.servers import RunningServer


def _details(call) -> object:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return error_details(info.value)


@pytest.mark.parametrize(
    "data, code, reason, key",
    [
        (b"", grpc.StatusCode.INVALID_ARGUMENT, "IMAGE_EMPTY", None),
        (b"GIF89a" + b"\0" * 64, grpc.StatusCode.INVALID_ARGUMENT, "IMAGE_UNSUPPORTED_FORMAT", "first_bytes_hex"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 10, grpc.StatusCode.INVALID_ARGUMENT, "IMAGE_UNDECODABLE", "format"),
        (png_declaring(60_000, 60_000), grpc.StatusCode.RESOURCE_EXHAUSTED, "DECOMPRESSION_BOMB", "pixels"),
    ],
    ids=["empty", "gif", "truncated-jpeg", "bomb"],
)
def test_a_bad_upload_carries_error_info_with_a_documented_reason(gateway_module, jpeg, data, code, reason, key):
    with Client(gateway_module.address) as client:
        details = _details(lambda: client.check(data))
        assert details.code == code
        assert details.reason == reason and details.domain == "imagetrust"
        assert details.metadata["request_id"]
        if key is not None:
            assert details.metadata[key]
        # Resending the same bytes can never succeed: no RetryInfo.
        assert details.retry_after_s is None
        assert not client.check(jpeg).degraded


def test_a_bomb_names_the_declared_size_and_the_limit(gateway_module):
    with Client(gateway_module.address) as client:
        details = _details(lambda: client.check(png_declaring(60_000, 60_000)))
    assert details.metadata["width"] == "60000" and details.metadata["height"] == "60000"
    assert details.metadata["max_pixels"] == "120000000"


def test_an_invalid_context_field_is_a_bad_request_field_violation(gateway_module, jpeg):
    with Client(gateway_module.address) as client:
        details = _details(lambda: client.check(jpeg, seller_id="s" * 300))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT and details.reason == "FIELD_INVALID"
    assert details.metadata["field"] == "context.seller_id" and details.metadata["chars"] == "300"
    assert [field for field, _ in details.field_violations] == ["context.seller_id"]


def test_a_backend_refusal_keeps_its_details_through_the_gateway(gateway_module):
    # A real PNG whose compressed pixel data is overwritten: the gateway's header check
    # passes, the synthesis decode refuses it; the gateway passes the backend's reason on.
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buf, "PNG")
    broken = bytearray(buf.getvalue())
    at = broken.index(b"IDAT") + 4
    broken[at : at + 8] = b"\0" * 8
    with Client(gateway_module.address) as client:
        details = _details(lambda: client.check(bytes(broken), skip_metadata=True))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "IMAGE_UNDECODABLE"
    assert details.metadata["backend"] == "synthesis" and details.metadata["format"] == "png"


def test_a_batch_over_the_limit_says_so(server_factory, backends_module, jpeg):
    metadata, synthesis = backends_module
    gateway = server_factory(
        "gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address, batch_max_items=2
    )
    with Client(gateway.address) as client:
        details = _details(lambda: client.check_batch([build_request(jpeg)] * 3))
    assert details.reason == "BATCH_TOO_LARGE" and details.metadata == {
        "items": "3",
        "max_items": "2",
        "request_id": details.metadata["request_id"],
    }
    assert details.field_violations[0][0] == "requests"


def test_per_item_errors_carry_the_reason(gateway_module, jpeg):
    with Client(gateway_module.address) as client:
        responses = client.check_batch([build_request(jpeg), build_request(b"GIF89a" + b"\0" * 64)])
    assert not responses[0].HasField("error")
    assert responses[1].error.reason == "IMAGE_UNSUPPORTED_FORMAT"


def test_a_malformed_message_is_request_malformed(gateway_module):
    with grpc.insecure_channel(gateway_module.address) as channel:
        call = channel.unary_unary("/imagetrust.v1.ImageTrust/Check")
        details = _details(lambda: call(b"\xff\xff\xff", timeout=5))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT and details.reason == "REQUEST_MALFORMED"


def test_a_synthesis_service_still_loading_says_starting_with_retry_info():
    """The real synthesis engine before load(): BACKEND_STARTING, retry in 2 s."""
    from services.common.config import SynthesisConfig
    from services.synthesis.service import SynthesisService

    config = load(SynthesisConfig, {}, host="127.0.0.1", port=0, metrics_port=-1)
    service = SynthesisService(config)
    assert service.engine.batcher is None
    with pytest.raises(errors.NotReady) as info:
        asyncio.run(service.engine.detect(b"\xff\xd8\xff"))
    assert info.value.reason == "BACKEND_STARTING" and info.value.retry_after_s == errors.STARTING_RETRY_S


# --- the SDK's retry on RetryInfo, against a real server on the shared runtime ---


class _Flaky(gateway_pb2_grpc.ImageTrustServicer):
    """Refuses its first `failures` calls with `error`, then answers."""

    def __init__(self, failures: int, error: errors.ImageTrustError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def Check(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return gateway_pb2.CheckResponse(request_id="ok", decision=common_pb2.ALLOW)


class _FlakyService(Service):
    name = "flaky"
    service_names = ("imagetrust.v1.ImageTrust",)

    def __init__(self, servicer: _Flaky) -> None:
        super().__init__()
        self.servicer = servicer

    def add_to_server(self, server: aio.Server) -> None:
        gateway_pb2_grpc.add_ImageTrustServicer_to_server(self.servicer, server)


@pytest.fixture
def flaky():
    started: list[RunningServer] = []

    def factory(failures: int, error: errors.ImageTrustError) -> tuple[RunningServer, _Flaky]:
        servicer = _Flaky(failures, error)
        config = load(ServerConfig, {}, host="127.0.0.1", port=0, metrics_port=-1, log_format="text")
        server = RunningServer(_FlakyService(servicer), config)
        started.append(server)
        return server, servicer

    yield factory
    for server in started:
        server.stop()


def test_the_sdk_retries_a_full_queue_after_the_delay_it_names(flaky):
    server, servicer = flaky(2, errors.Overloaded("queue full", metadata={"queued_inputs": 2048}))
    started = time.monotonic()
    with Client(server.address, max_attempts=3) as client:
        response = client.check(b"x")
    elapsed = time.monotonic() - started
    assert response.request_id == "ok" and servicer.calls == 3
    assert elapsed >= 2 * errors.QUEUE_FULL_RETRY_S * 0.9  # waited the RetryInfo delay twice


def test_the_sdk_gives_up_after_max_attempts_and_exposes_the_delay(flaky):
    server, servicer = flaky(5, errors.Overloaded("queue full"))
    with Client(server.address, max_attempts=2) as client:
        details = _details(lambda: client.check(b"x"))
    assert servicer.calls == 2
    assert details.reason == "QUEUE_FULL" and details.retry_after_s == pytest.approx(errors.QUEUE_FULL_RETRY_S)


def test_the_sdk_never_retries_without_retry_info(flaky):
    server, servicer = flaky(5, errors.TooLarge("bomb"))
    with Client(server.address, max_attempts=3) as client:
        details = _details(lambda: client.check(b"x"))
    assert servicer.calls == 1 and details.reason == "DECOMPRESSION_BOMB" and details.retry_after_s is None


def test_the_sdk_does_not_wait_past_the_deadline(flaky):
    server, servicer = flaky(5, errors.NotReady("starting"))  # RetryInfo 2 s
    started = time.monotonic()
    with Client(server.address, max_attempts=3) as client:
        details = _details(lambda: client.check(b"x", timeout=0.5))
    # The channel's own quick UNAVAILABLE retries ran (3 calls); the SDK did not wait 2 s.
    assert details.reason == "BACKEND_STARTING" and servicer.calls == 3
    assert time.monotonic() - started < 0.5


def test_the_async_sdk_retries_too(flaky):
    server, servicer = flaky(1, errors.Overloaded("queue full"))

    async def run() -> gateway_pb2.CheckResponse:
        async with AsyncClient(server.address, max_attempts=2) as client:
            return await client.check(b"x")

    assert asyncio.run(run()).request_id == "ok" and servicer.calls == 2


def test_direct_synthesis_errors_carry_details(backends_module):
    _, synthesis = backends_module
    with grpc.insecure_channel(synthesis.address) as channel:
        stub = synthesis_pb2_grpc.SynthesisDetectorStub(channel)
        empty = synthesis_pb2.DetectRequest(image=common_pb2.Image(data=b""))
        details = _details(lambda: stub.Detect(empty, timeout=5))
    assert details.reason == "IMAGE_EMPTY" and details.field_violations[0][0] == "image.data"


def test_direct_metadata_errors_carry_details(backends_module, jpeg):
    metadata, _ = backends_module
    with grpc.insecure_channel(metadata.address) as channel:
        stub = metadata_pb2_grpc.MetadataAnalyzerStub(channel)
        request = metadata_pb2.AnalyzeRequest(
            image=common_pb2.Image(data=jpeg), context=common_pb2.Context(listing_id="l" * 257)
        )
        details = _details(lambda: stub.Analyze(request, timeout=10))
        bomb = _details(
            lambda: stub.Analyze(
                metadata_pb2.AnalyzeRequest(image=common_pb2.Image(data=png_declaring(70_000, 10))), timeout=10
            )
        )
    assert details.reason == "FIELD_INVALID" and details.field_violations[0][0] == "context.listing_id"
    assert bomb.code == grpc.StatusCode.RESOURCE_EXHAUSTED and bomb.reason == "DECOMPRESSION_BOMB"
