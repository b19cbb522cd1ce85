"""TLS/mTLS between all services and for clients, and API keys, with certificates made here."""

from __future__ import annotations

import subprocess
import sys
import time

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imagetrust.client import Client, build_request
from services.common.auth import client_for, hash_key, load_key_hashes
from services.common.config import load
from services.gateway.config import GatewayConfig
from tests.helpers.paths import REPO
from tests.helpers.pki import issue

KEY = "k-market-app-3f9c"  # an API key as a platform would hold it
OTHER_KEY = "k-chat-81aa"


# --- API keys ----------------------------------------------------------------------------


@pytest.fixture
def keyed_gateway(server_factory, backends_module, tmp_path):
    metadata, synthesis = backends_module
    keys = tmp_path / "api-keys"
    keys.write_text(f"# client  sha256(key)\nmarket-app {hash_key(KEY)}\n\n")
    return server_factory(
        "gateway",
        synthesis_addr=synthesis.address,
        metadata_addr=metadata.address,
        api_keys_file=str(keys),
        api_key_hashes=(f"chat={hash_key(OTHER_KEY)}",),
    )


def test_api_keys_from_file_and_environment_are_accepted(keyed_gateway, jpeg):
    for key in (KEY, OTHER_KEY):
        with Client(keyed_gateway.address, api_key=key) as client:
            assert not client.check(jpeg).degraded
            assert len(client.check_batch([build_request(jpeg)])) == 1


@pytest.mark.parametrize("key, message", [(None, "requires an API key"), ("wrong", "not a valid key")])
def test_missing_or_wrong_keys_are_unauthenticated(keyed_gateway, jpeg, key, message):
    with Client(keyed_gateway.address, api_key=key) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.check(jpeg)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and message in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            list(client.check_stream([build_request(jpeg)], timeout=10))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_needs_no_key(keyed_gateway):
    with grpc.insecure_channel(keyed_gateway.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_key_hashes_parse_and_compare(tmp_path):
    keys = load_key_hashes("", [f"a={hash_key('x')}", f"b={hash_key('y')}"])
    assert client_for("x", keys) == "a" and client_for("y", keys) == "b" and client_for("z", keys) is None
    bad = tmp_path / "keys"
    bad.write_text("market-app not-a-hash\n")
    with pytest.raises(ValueError, match=r"keys:1: expected 'client-name sha256hex'"):
        load_key_hashes(str(bad))
    config = load(GatewayConfig, environ={"IMAGETRUST_API_KEY_HASHES": f"a={hash_key('x')}, b={hash_key('y')}"})
    assert load_key_hashes(config.api_keys_file, config.api_key_hashes).keys() == {"a", "b"}


def test_hash_command_prints_the_hash_to_store():
    out = subprocess.run(
        [sys.executable, "-m", "services.common.auth", "hash", KEY],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == hash_key(KEY) and len(out) == 64


# --- TLS / mTLS --------------------------------------------------------------------------


@pytest.fixture
def mtls_suite(server_factory, pki):
    """Every hop mutually authenticated: client -> gateway -> metadata and synthesis."""
    backend_tls = {
        "tls_cert": str(pki["backend_cert"]),
        "tls_key": str(pki["backend_key"]),
        "tls_client_ca": str(pki["ca"]),
    }
    metadata = server_factory("metadata", **backend_tls)
    synthesis = server_factory("synthesis", **backend_tls)
    gateway_client_side = {
        "backend_tls_ca": str(pki["ca"]),
        "backend_tls_cert": str(pki["client_cert"]),
        "backend_tls_key": str(pki["client_key"]),
        "backend_tls_server_name": "backends.imagetrust.internal",
    }
    gateway = server_factory(
        "gateway",
        synthesis_addr=synthesis.address,
        metadata_addr=metadata.address,
        tls_cert=str(pki["server_cert"]),
        tls_key=str(pki["server_key"]),
        tls_client_ca=str(pki["ca"]),
        **gateway_client_side,
    )
    return metadata, synthesis, gateway


def test_mtls_end_to_end(mtls_suite, pki, jpeg):
    _, _, gateway = mtls_suite
    with Client(gateway.address, tls_ca=pki["ca"], tls_cert=pki["client_cert"], tls_key=pki["client_key"]) as client:
        response = client.check(jpeg)
    assert not response.degraded and response.HasField("synthesis") and response.HasField("metadata")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # plaintext to a TLS server
        {"tls_ca": "ca"},  # TLS but no client certificate (mTLS required)
        {"tls_ca": "other_ca", "tls_cert": "client_cert", "tls_key": "client_key"},  # wrong CA
    ],
    ids=["plaintext", "no-client-cert", "untrusted-server"],
)
def test_clients_without_the_right_credentials_are_refused(mtls_suite, pki, jpeg, kwargs):
    _, _, gateway = mtls_suite
    with Client(gateway.address, max_attempts=1, **{k: pki[v] for k, v in kwargs.items()}) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.check(jpeg, timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_gateway_without_a_client_certificate_is_refused_by_the_backends(mtls_suite, server_factory, pki, jpeg):
    metadata, synthesis, _ = mtls_suite
    # Trusts the backends but presents no certificate: they refuse it, so the verdict is
    # degraded on both (a clear signal in the verdict and the metrics), never a crash.
    gateway = server_factory(
        "gateway",
        synthesis_addr=synthesis.address,
        metadata_addr=metadata.address,
        backend_tls_ca=str(pki["ca"]),
        backend_tls_server_name="backends.imagetrust.internal",
    )
    with Client(gateway.address) as client:
        response = client.check(jpeg)
    assert sorted(response.missing) == ["metadata", "synthesis"]


def test_tls_config_is_validated():
    with pytest.raises(ValueError, match="backend_tls_cert and backend_tls_key must be set together"):
        load(GatewayConfig, environ={}, backend_tls_ca="ca.pem", backend_tls_cert="c.pem")
    with pytest.raises(ValueError, match="needs backend_tls_ca"):
        load(GatewayConfig, environ={}, backend_tls_cert="c.pem", backend_tls_key="k.pem")


def test_the_gateway_follows_a_rotated_client_certificate(server_factory, pki, tmp_path, jpeg):
    """The gateway re-reads backend_tls_* on rotation: an untrusted new certificate makes the
    backends refuse it (degraded verdicts: proof the new one is used), a valid one heals it."""
    backend_tls = {
        "tls_cert": str(pki["backend_cert"]),
        "tls_key": str(pki["backend_key"]),
        "tls_client_ca": str(pki["ca"]),
    }
    metadata = server_factory("metadata", **backend_tls)
    synthesis = server_factory("synthesis", **backend_tls)
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(pki["client_cert"].read_bytes())
    key.write_bytes(pki["client_key"].read_bytes())
    gateway = server_factory(
        "gateway",
        synthesis_addr=synthesis.address,
        metadata_addr=metadata.address,
        backend_tls_ca=str(pki["ca"]),
        backend_tls_cert=str(cert),
        backend_tls_key=str(key),
        backend_tls_server_name="backends.imagetrust.internal",
        tls_reload_interval_s=0.1,
        backend_health_interval_ms=100,
    )

    def rotate(cert_pem: bytes, key_pem: bytes) -> None:
        for path, data in ((key, key_pem), (cert, cert_pem)):
            path.with_suffix(".tmp").write_bytes(data)
            path.with_suffix(".tmp").replace(path)

    def missing_after_rotation(expected: list[str]) -> list[str]:
        """Polls until the verdicts miss exactly `expected` (each backend's channel reloads
        on its own health tick, so for a moment only one may have switched)."""
        deadline = time.monotonic() + 10  # seconds: many reload intervals
        with Client(gateway.address) as client:
            while True:
                missing = sorted(client.check(jpeg).missing)
                if missing == expected or time.monotonic() > deadline:
                    return missing

    with Client(gateway.address) as client:
        assert not client.check(jpeg).degraded
    stranger, stranger_key = issue(trustme.CA(), "stranger")  # signed by a CA nobody here trusts
    rotate(stranger, stranger_key)
    assert missing_after_rotation(["metadata", "synthesis"]) == ["metadata", "synthesis"]
    rotate(pki["client_cert"].read_bytes(), pki["client_key"].read_bytes())  # a certificate the CA signed
    assert missing_after_rotation([]) == []
