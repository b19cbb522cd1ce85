"""Gateway fixtures: the real services on loopback, plus a real slow synthesis server.

ScriptedSynthesis is a real grpc.aio server (its own event loop and port, with
grpc.health.v1) implementing SynthesisDetector with a configurable delay and score. It
makes a backend slow for real, or score like a trained model, without a model; it also
records the x-request-id each call carried.
"""

from __future__ import annotations

import asyncio
import datetime
import pathlib
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from imagetrust.v1 import synthesis_pb2, synthesis_pb2_grpc
from services.gateway.backends import SYNTHESIS_SERVICE
from tests.conftest import SAMPLES, RunningServer, start_server

WAIT_STEP_S = 0.05  # seconds between polls in wait_until


def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(WAIT_STEP_S)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="session")
def jpeg() -> bytes:
    return (SAMPLES / "camera_original.jpg").read_bytes()


@pytest.fixture(scope="session")
def jpegs() -> list[bytes]:
    return [p.read_bytes() for p in sorted(SAMPLES.glob("*.jpg"))]


class _ScriptedServicer(synthesis_pb2_grpc.SynthesisDetectorServicer):
    def __init__(self, owner: ScriptedSynthesis) -> None:
        self.owner = owner

    async def Detect(self, request, context):
        owner = self.owner
        owner.calls += 1
        owner.request_ids.append(dict(context.invocation_metadata()).get("x-request-id", ""))
        owner.in_flight += 1
        owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
        try:
            if owner.delay_s:
                await asyncio.sleep(owner.delay_s)
        finally:
            owner.in_flight -= 1
        if owner.invalid:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot decode the jpeg image (truncated or corrupt?)")
        return synthesis_pb2.DetectResponse(
            score=self.owner.score, global_score=self.owner.score, model_version="scripted-1",
            model_arch="scripted", placeholder=False, device="cpu",
        )


class ScriptedSynthesis:
    """A real SynthesisDetector server that sleeps `delay_s` then answers `score`."""

    def __init__(self, delay_s: float = 0.0, score: float = 0.0, port: int = 0, invalid: bool = False) -> None:
        self.delay_s = delay_s
        self.score = score
        self.invalid = invalid  # answer INVALID_ARGUMENT, as a backend that cannot decode the image
        self.calls = 0
        self.request_ids: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0  # most Detect calls in progress at once
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="scripted-synthesis")
        self._thread.start()
        self.port = self._call(self._start(port))

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self, port: int) -> int:
        self.server = aio.server()
        synthesis_pb2_grpc.add_SynthesisDetectorServicer_to_server(_ScriptedServicer(self), self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        bound = self.server.add_insecure_port(f"127.0.0.1:{port}")
        await self.server.start()
        await self.health.set(SYNTHESIS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        return bound

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        self._call(self.health.set(SYNTHESIS_SERVICE, status))

    def stop(self) -> None:
        self._call(self.server.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def scripted() -> Iterator:
    started: list[ScriptedSynthesis] = []

    def factory(**kwargs) -> ScriptedSynthesis:
        server = ScriptedSynthesis(**kwargs)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def backends_module() -> Iterator[tuple[RunningServer, RunningServer]]:
    """Real metadata and synthesis services shared by one test module."""
    metadata = start_server("metadata")
    synthesis = start_server("synthesis")
    yield metadata, synthesis
    synthesis.stop()
    metadata.stop()


@pytest.fixture(scope="module")
def gateway_module(backends_module) -> Iterator[RunningServer]:
    metadata, synthesis = backends_module
    gateway = start_server("gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address)
    yield gateway
    gateway.stop()


# --- certificates for the TLS tests, made in the test with the `cryptography` package ---

def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert(subject_cn: str, key, issuer_cn: str, issuer_key, *, ca: bool, sans: tuple[str, ...] = (), client: bool = False):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        names = []
        for san in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict[str, pathlib.Path]:
    """A CA, a gateway certificate for localhost/127.0.0.1, a backend certificate for
    backends.imagetrust.internal, a client certificate (used by callers and by the gateway
    towards its backends), and a second CA that signed nothing here."""
    out = tmp_path_factory.mktemp("pki")
    ca_key, other_key = _key(), _key()
    ca = _cert("imagetrust-test-ca", ca_key, "imagetrust-test-ca", ca_key, ca=True)
    other_ca = _cert("other-ca", other_key, "other-ca", other_key, ca=True)
    server_key, client_key, backend_key = _key(), _key(), _key()
    server = _cert("imagetrust.internal", server_key, "imagetrust-test-ca", ca_key, ca=False,
                   sans=("localhost", "127.0.0.1", "imagetrust.internal"))
    # The backends' certificate names only a cluster DNS name, so the gateway must be told
    # which name to verify (backend_tls_server_name) when it dials 127.0.0.1.
    backend = _cert("backends.imagetrust.internal", backend_key, "imagetrust-test-ca", ca_key, ca=False,
                    sans=("backends.imagetrust.internal",))
    client = _cert("market-app", client_key, "imagetrust-test-ca", ca_key, ca=False, client=True)
    files = {
        "ca": ca, "other_ca": other_ca, "server_cert": server, "server_key": _pem_key(server_key),
        "backend_cert": backend, "backend_key": _pem_key(backend_key),
        "client_cert": client, "client_key": _pem_key(client_key),
    }
    paths = {}
    for name, data in files.items():
        path = out / f"{name}.pem"
        path.write_bytes(data)
        paths[name] = path
    return paths


def rpc_code(exc: grpc.RpcError) -> grpc.StatusCode:
    return exc.code()
