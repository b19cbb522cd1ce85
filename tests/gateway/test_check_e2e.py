"""ImageTrust.Check end to end through the gateway with the real metadata and synthesis services."""

from __future__ import annotations

import io
import pathlib
import struct
import zlib

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from imagetrust.client import Client
from imagetrust.v1 import common_pb2
from services.gateway.backends import grpc_target
from services.gateway.policy import DEFAULT_POLICY_PATH, load_policy
from services.gateway.verdict import decide
from tests.helpers.checkpoints import make_consistency_checkpoint
from tests.helpers.metrics import metric_value


def png_declaring(width: int, height: int) -> bytes:
    """A real 8x8 PNG whose header is rewritten to declare width x height (a decompression
    bomb when huge); the IHDR checksum is fixed so only the size is wrong."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_check_combines_both_real_backends(gateway_module, jpeg):
    with Client(gateway_module.address) as client:
        response = client.check(jpeg, seller_id="s-1", listing_id="l-1", client_ref="ref-1")
    assert response.decision in (common_pb2.ALLOW, common_pb2.REVIEW, common_pb2.BLOCK)
    assert 0.0 <= response.risk <= 1.0
    assert not response.degraded and list(response.missing) == []
    assert response.HasField("synthesis") and response.HasField("metadata")
    assert response.metadata.image.format == "jpeg" and response.metadata.image.width > 0
    assert response.model_version == response.synthesis.model_version != ""
    assert response.policy_version == "2026-11.1"
    assert response.client_ref == "ref-1"
    assert len(response.request_id) >= 16
    if response.synthesis.placeholder:
        # The current synthesis service is a placeholder: it must not count, and must say so.
        assert "SYNTHESIS_PLACEHOLDER" in [r.code for r in response.reasons]
        assert "SYNTHESIS_SCORE" not in [r.code for r in response.reasons]


def test_platform_selects_its_policy(gateway_module, jpeg):
    with Client(gateway_module.address) as client:
        assert client.check(jpeg, platform="chat").policy_version == "2026-11.1+chat"
        assert client.check(jpeg, platform="no-such-platform").policy_version == "2026-11.1"


def test_skipped_backends_are_not_degraded(gateway_module, jpeg):
    with Client(gateway_module.address) as client:
        response = client.check(jpeg, skip_synthesis=True)
    assert not response.HasField("synthesis") and response.HasField("metadata")
    assert not response.degraded


@pytest.mark.parametrize(
    "data, code, text",
    [
        (b"", grpc.StatusCode.INVALID_ARGUMENT, "empty"),
        (b"GIF89a" + b"\0" * 64, grpc.StatusCode.INVALID_ARGUMENT, "not a supported image"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 10, grpc.StatusCode.INVALID_ARGUMENT, "cannot read the jpeg header"),
        (png_declaring(60_000, 60_000), grpc.StatusCode.RESOURCE_EXHAUSTED, "decompression-bomb"),
    ],
    ids=["empty", "gif", "truncated-jpeg", "bomb"],
)
def test_bad_images_get_a_clear_status_and_the_gateway_keeps_serving(gateway_module, jpeg, data, code, text):
    with Client(gateway_module.address) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.check(data)
        assert info.value.code() == code
        assert text in info.value.details()
        assert not client.check(jpeg).degraded


def test_oversize_upload_is_resource_exhausted(server_factory, backends_module, jpeg):
    metadata, synthesis = backends_module
    gateway = server_factory(
        "gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address, max_message_bytes=len(jpeg) + 4096
    )
    with Client(gateway.address) as client:
        big = jpeg + b"\0" * 8192
        with pytest.raises(grpc.RpcError) as info:
            client.check(big)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert client.check(jpeg).decision != common_pb2.DECISION_UNSPECIFIED


def test_request_id_is_propagated_to_the_backends(server_factory, backends_module, scripted, jpeg):
    metadata, _ = backends_module
    synthesis = scripted(score=0.3)
    gateway = server_factory("gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address)
    with Client(gateway.address) as client:
        response = client.check(jpeg, request_id="req-from-platform-42")
    assert response.request_id == "req-from-platform-42"
    assert synthesis.request_ids[-1] == "req-from-platform-42"


def test_a_real_score_drives_the_decision_end_to_end(server_factory, backends_module, scripted, jpeg):
    metadata, _ = backends_module
    synthesis = scripted(score=0.68)  # a confident answer of the shipped model (its top is ~0.71)
    gateway = server_factory("gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address)
    with Client(gateway.address) as client:
        response = client.check(jpeg)
    # The default policy counts a score from 0.5 in full: REVIEW, not BLOCK.
    assert response.decision == common_pb2.REVIEW
    # Noisy-OR: the real metadata findings can only add to the synthesis contribution.
    assert 0.8 * 0.68 - 1e-4 <= response.risk < 0.85
    assert response.model_version == "scripted-1"
    assert response.reasons[0].code == "SYNTHESIS_SCORE"


def test_policy_file_from_config(server_factory, backends_module, scripted, jpeg, tmp_path: pathlib.Path):
    metadata, _ = backends_module
    synthesis = scripted(score=0.3)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        'version: "acme-7"\n'
        "thresholds: {review: 0.2, block: 0.9}\n"
        "severity: {INFO: 0, LOW: 0.05, MEDIUM: 0.1, HIGH: 0.3}\n"
    )
    gateway = server_factory(
        "gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address, policy_path=str(policy)
    )
    with Client(gateway.address) as client:
        response = client.check(jpeg)
    assert response.policy_version == "acme-7"
    assert response.decision == common_pb2.REVIEW  # 0.3 >= this policy's 0.2


def test_round_robin_over_a_list_of_replicas(server_factory, backends_module, scripted, jpeg):
    metadata, _ = backends_module
    replicas = [scripted(score=0.1), scripted(score=0.1)]
    addr = ",".join(f"localhost:{r.port}" for r in replicas)
    assert grpc_target(addr) == f"ipv4:127.0.0.1:{replicas[0].port},127.0.0.1:{replicas[1].port}"
    gateway = server_factory("gateway", synthesis_addr=addr, metadata_addr=metadata.address)
    with Client(gateway.address) as client:
        for _ in range(20):
            assert not client.check(jpeg).degraded
    assert replicas[0].calls >= 5 and replicas[1].calls >= 5
    assert replicas[0].calls + replicas[1].calls == 20


def test_grpc_target_forms():
    assert grpc_target("synthesis:50053") == "synthesis:50053"
    assert grpc_target("dns:///synthesis.imagetrust.svc:50053") == "dns:///synthesis.imagetrust.svc:50053"
    assert grpc_target("10.0.0.1:1, 10.0.0.2:2") == "ipv4:10.0.0.1:1,10.0.0.2:2"
    assert grpc_target("[::1]:1,[::1]:2") == "ipv6:[::1]:1,[::1]:2"
    # Already a gRPC target with its resolver scheme: passed through untouched.
    assert grpc_target("ipv4:127.0.0.1:1,127.0.0.1:2") == "ipv4:127.0.0.1:1,127.0.0.1:2"
    with pytest.raises(ValueError, match="not host:port"):
        grpc_target("10.0.0.1,10.0.0.2:2")


def test_metrics_show_backends_up_and_decisions(gateway_module, jpeg):
    with Client(gateway_module.address) as client:
        client.check(jpeg)
    url = gateway_module.metrics_url
    assert metric_value(url, "imagetrust_gateway_backend_up", backend="synthesis") == 1.0
    assert metric_value(url, "imagetrust_gateway_backend_up", backend="metadata") == 1.0
    assert metric_value(url, "imagetrust_gateway_backend_calls_total", backend="metadata", outcome="OK") >= 1
    assert metric_value(url, "imagetrust_gateway_decisions_total", policy="default", degraded="false") >= 1


def test_health_and_reflection_still_served(gateway_module):
    with grpc.insecure_channel(gateway_module.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="imagetrust.v1.ImageTrust"), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_an_uncertain_synthesis_answer_is_not_used(server_factory, backends_module, tmp_path: pathlib.Path):
    # The real synthesis service with a (trained-labelled) consistency model: a flat grey
    # photo has no patch with camera traces, so the model cannot judge it.
    metadata, _ = backends_module
    checkpoint = tmp_path / "consistency.pt"
    make_consistency_checkpoint(checkpoint, placeholder=False)
    synthesis = server_factory("synthesis", model_path=str(checkpoint), torch_threads=1)
    gateway = server_factory("gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address)
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (128, 128, 128)).save(buf, "JPEG", quality=90)
    with Client(gateway.address) as client:
        response = client.check(buf.getvalue())
    assert response.synthesis.uncertain and response.synthesis.method == "consistency"
    assert not response.synthesis.placeholder and response.synthesis.valid_patches == 0
    codes = [r.code for r in response.reasons]
    assert "SYNTHESIS_UNCERTAIN" in codes and "SYNTHESIS_SCORE" not in codes
    reason = next(r for r in response.reasons if r.code == "SYNTHESIS_UNCERTAIN")
    assert reason.severity == common_pb2.INFO and reason.evidence["valid_patches"] == "0"
    # No synthesis contribution: the risk is the metadata findings' alone.
    alone = decide(load_policy(DEFAULT_POLICY_PATH).default, None, response.metadata, {})
    assert response.risk == pytest.approx(alone.risk, abs=1e-6)
