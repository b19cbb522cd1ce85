"""Server certificates rotate without a restart: new handshakes get the new certificate,
open channels keep working, and a half-written rotation keeps the previous one."""

from __future__ import annotations

import os
import pathlib
import socket
import ssl
import time

import grpc
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.tls import CertificateFiles
from tests.helpers.pki import ca_pem, issue

RELOAD_S = 0.2  # seconds between the server's looks at its TLS files in these tests


def _issue(ca: trustme.CA, cn: str) -> tuple[bytes, bytes]:
    return issue(ca, cn, "localhost", "127.0.0.1")


def _write_atomically(path: pathlib.Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # like a Secret volume's symlink flip: never a torn file


def _served_cn(port: int, ca: pathlib.Path) -> str:
    """The common name of the certificate a NEW TLS handshake gets (h2, as gRPC speaks)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            subject = dict(item[0] for item in tls.getpeercert()["subject"])
    return subject["commonName"]


def _health(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


def _wait_for_cn(port: int, ca: pathlib.Path, cn: str) -> str:
    deadline = time.monotonic() + 10  # seconds: far above RELOAD_S
    seen = _served_cn(port, ca)
    while seen != cn and time.monotonic() < deadline:
        time.sleep(RELOAD_S / 2)
        seen = _served_cn(port, ca)
    return seen


def test_a_rotated_certificate_is_served_without_a_restart(server_factory, tmp_path):
    test_ca = trustme.CA()
    ca = tmp_path / "ca.crt"
    ca.write_bytes(ca_pem(test_ca))
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    first_cert, first_key = _issue(test_ca, "first.imagetrust.internal")
    cert.write_bytes(first_cert)
    key.write_bytes(first_key)
    server = server_factory("metadata", tls_cert=str(cert), tls_key=str(key), tls_reload_interval_s=RELOAD_S)
    assert _served_cn(server.runtime.port, ca) == "first.imagetrust.internal"
    creds = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    old_channel = grpc.secure_channel(f"localhost:{server.runtime.port}", creds)
    assert _health(old_channel) == health_pb2.HealthCheckResponse.SERVING

    second_cert, second_key = _issue(test_ca, "second.imagetrust.internal")
    _write_atomically(key, second_key)
    _write_atomically(cert, second_cert)
    assert _wait_for_cn(server.runtime.port, ca, "second.imagetrust.internal") == "second.imagetrust.internal"
    with grpc.secure_channel(f"localhost:{server.runtime.port}", creds) as new_channel:
        assert _health(new_channel) == health_pb2.HealthCheckResponse.SERVING
    assert _health(old_channel) == health_pb2.HealthCheckResponse.SERVING  # open connections keep going
    old_channel.close()

    # A rotation caught half-written (an empty key file) keeps serving the last good pair.
    key.write_bytes(b"")
    time.sleep(RELOAD_S * 3)
    assert _served_cn(server.runtime.port, ca) == "second.imagetrust.internal"


def test_fetch_reports_only_real_changes(tmp_path):
    test_ca = trustme.CA()
    cert_pem, key_pem = _issue(test_ca, "a.imagetrust.internal")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    files = CertificateFiles(str(cert), str(key), check_interval_s=0.0)
    assert files.fetch() is None  # unchanged
    cert_pem, key_pem = _issue(test_ca, "b.imagetrust.internal")
    key.write_bytes(key_pem)
    cert.write_bytes(cert_pem)
    assert files.fetch() is not None and files.files.reloads == 1
    assert files.fetch() is None
    cert.unlink()  # mid-rotation: missing file
    assert files.fetch() is None and files.files.reloads == 1
