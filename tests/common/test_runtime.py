"""The shared runtime, through real servers on loopback: health, reflection, metrics,
limits, error mapping, and that every service keeps serving after bad input."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from imagetrust.v1 import (
    common_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    metadata_pb2,
    metadata_pb2_grpc,
    synthesis_pb2,
    synthesis_pb2_grpc,
)
from services.common.config import ServerConfig, load
from tests.common.echo_service import EchoService
from tests.helpers.paths import SAMPLES
from tests.helpers.servers import RunningServer

SAMPLE = (SAMPLES / "camera_original.jpg").read_bytes()
SMALL_LIMIT = 64 * 1024  # bytes: below the sample's size, to exercise the size limit

SERVICES = {
    "gateway": (
        "imagetrust.v1.ImageTrust",
        lambda ch: gateway_pb2_grpc.ImageTrustStub(ch).Check,
        lambda data: gateway_pb2.CheckRequest(image=common_pb2.Image(data=data)),
    ),
    "metadata": (
        "imagetrust.v1.MetadataAnalyzer",
        lambda ch: metadata_pb2_grpc.MetadataAnalyzerStub(ch).Analyze,
        lambda data: metadata_pb2.AnalyzeRequest(image=common_pb2.Image(data=data)),
    ),
    "synthesis": (
        "imagetrust.v1.SynthesisDetector",
        lambda ch: synthesis_pb2_grpc.SynthesisDetectorStub(ch).Detect,
        lambda data: synthesis_pb2.DetectRequest(image=common_pb2.Image(data=data)),
    ),
}


@pytest.fixture
def suite(server_factory):
    """All three services wired together on free ports."""
    metadata = server_factory("metadata")
    synthesis = server_factory("synthesis")
    gateway = server_factory("gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address)
    return {"gateway": gateway, "metadata": metadata, "synthesis": synthesis}


def _health(channel: grpc.Channel, service: str = "") -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_health_reflection_and_metrics_on_every_service(suite) -> None:
    for name, server in suite.items():
        full_name, method, make_request = SERVICES[name]
        with server.channel() as channel:
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
            assert _health(channel, full_name) == health_pb2.HealthCheckResponse.SERVING
            services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
            assert {full_name, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services
            # A client that has no .proto files can resolve the method and its messages.
            descriptor = ProtoReflectionDescriptorDatabase(channel).FindFileContainingSymbol(full_name)
            assert descriptor.package == "imagetrust.v1"
            method(channel)(make_request(SAMPLE), timeout=30)
        body = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
        method_name = full_name.rsplit(".", 1)[1]
        rpc = {"gateway": "Check", "metadata": "Analyze", "synthesis": "Detect"}[name]
        assert (
            f'grpc_server_handled_total{{grpc_code="OK",grpc_method="{rpc}",grpc_service="{full_name}",grpc_type="unary"}}'
            in body
        ), method_name
        assert (
            f'grpc_server_handling_seconds_bucket{{grpc_method="{rpc}",grpc_service="{full_name}",grpc_type="unary",le="0.005"}}'
            in body
        )
        assert f'grpc_server_in_flight{{grpc_method="{rpc}",grpc_service="{full_name}"}} 0.0' in body
        assert f'imagetrust_build_info{{service="{name}",version="0.1.0"}} 1.0' in body


def test_check_through_the_gateway_returns_a_decision(suite) -> None:
    with suite["gateway"].channel() as channel:
        stub = gateway_pb2_grpc.ImageTrustStub(channel)
        response, _call = stub.Check.with_call(
            gateway_pb2.CheckRequest(image=common_pb2.Image(data=SAMPLE), client_ref="ref-1"),
            metadata=(("x-request-id", "req-abc"),),
            timeout=30,
        )
    assert response.decision in (common_pb2.ALLOW, common_pb2.REVIEW, common_pb2.BLOCK)
    assert response.request_id == "req-abc", "the caller's request id is propagated"
    assert response.client_ref == "ref-1"
    assert not response.degraded and not response.missing
    assert response.metadata.image.width == 640 and response.synthesis.width == 640


@pytest.mark.parametrize("name", ["gateway", "metadata", "synthesis"])
def test_bad_input_gets_a_clear_status_and_the_service_keeps_serving(server_factory, name) -> None:
    if name == "gateway":
        metadata = server_factory("metadata")
        synthesis = server_factory("synthesis")
        server = server_factory(
            name, max_message_bytes=SMALL_LIMIT, synthesis_addr=synthesis.address, metadata_addr=metadata.address
        )
    else:
        server = server_factory(name, max_message_bytes=SMALL_LIMIT)
    full_name, method, make_request = SERVICES[name]
    small_image = (SAMPLES / "camera_original.jpg").read_bytes()[:0]
    with server.channel(**{"grpc.max_send_message_length": 64 * 1024 * 1024}) as channel:
        call = method(channel)
        with pytest.raises(grpc.RpcError) as empty:
            call(make_request(small_image), timeout=10)
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "empty" in empty.value.details()

        with pytest.raises(grpc.RpcError) as garbage:
            call(make_request(b"this is not an image at all"), timeout=10)
        assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a supported image" in garbage.value.details()

        with pytest.raises(grpc.RpcError) as oversize:
            call(make_request(SAMPLE), timeout=10)  # 160 KB > the 64 KiB limit
        assert oversize.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        assert _health(channel, full_name) == health_pb2.HealthCheckResponse.SERVING
    body = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    assert 'grpc_code="INVALID_ARGUMENT"' in body


def test_decompression_bomb_is_refused_without_decoding(server_factory) -> None:
    import io
    import struct
    import zlib

    # A 1 KB PNG that declares 60000 x 60000 pixels (3.6 GP): refused from its header.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
    bomb += chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b"")
    assert len(io.BytesIO(bomb).getvalue()) < 2048
    server = server_factory("synthesis")
    with server.channel() as channel:
        with pytest.raises(grpc.RpcError) as bomb_error:
            SERVICES["synthesis"][1](channel)(SERVICES["synthesis"][2](bomb), timeout=10)
        assert bomb_error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "decompression-bomb" in bomb_error.value.details()
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING


def test_unexpected_errors_become_internal_with_a_request_id_and_domain_errors_map() -> None:
    config = load(ServerConfig, {}, host="127.0.0.1", port=0, metrics_port=0, log_format="text")
    server = RunningServer(EchoService(), config)
    try:
        with server.channel() as channel:
            detect = synthesis_pb2_grpc.SynthesisDetectorStub(channel).Detect
            with pytest.raises(grpc.RpcError) as crash:
                detect(
                    synthesis_pb2.DetectRequest(image=common_pb2.Image(data=b"x", filename="crash")),
                    metadata=(("x-request-id", "rid-42"),),
                    timeout=5,
                )
            assert crash.value.code() == grpc.StatusCode.INTERNAL
            assert "rid-42" in crash.value.details() and "boom" not in crash.value.details()
            with pytest.raises(grpc.RpcError) as invalid:
                detect(synthesis_pb2.DetectRequest(image=common_pb2.Image(data=b"x", filename="invalid")), timeout=5)
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert invalid.value.details() == "that is not an image"
            assert detect(synthesis_pb2.DetectRequest(image=common_pb2.Image(data=b"x")), timeout=5).score == 0.25
        body = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
        assert 'grpc_code="INTERNAL",grpc_method="Detect"' in body
    finally:
        server.stop()


def test_health_is_not_serving_until_the_service_has_loaded() -> None:
    import asyncio
    import threading

    config = load(ServerConfig, {}, host="127.0.0.1", port=0, metrics_port=-1, log_format="text")
    from services.common.server import ServerRuntime

    runtime = ServerRuntime(EchoService(load_delay_s=1.5), config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started = asyncio.run_coroutine_threadsafe(runtime.start(), loop)
    try:
        while not runtime.port:
            pass
        with grpc.insecure_channel(f"127.0.0.1:{runtime.port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=5)
            assert _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert _health(channel, "imagetrust.v1.SynthesisDetector") == health_pb2.HealthCheckResponse.NOT_SERVING
            started.result(10)
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
    finally:
        started.result(10)
        asyncio.run_coroutine_threadsafe(runtime.stop(0.5), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
