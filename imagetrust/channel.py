"""gRPC channel settings shared by the client SDK and the servers.

Like the generated API (imagetrust.v1), this module belongs to both sides: the SDK
(imagetrust.client) builds its channels from it, and so does the gateway's channel to the
backends (services/gateway/backends.py); the servers take their header names and default
message limit from here. It imports nothing but grpc, so either side can import it without
pulling in the other.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import grpc

MIB = 1024 * 1024  # bytes
# 32 MiB, bytes: phone photos (12-50 MP JPEG/HEIC) exceed gRPC's 4 MiB default. The servers'
# max_message_bytes default and the SDK's channel limit, so the two sides agree out of the box.
MAX_MESSAGE_BYTES = 32 * MIB
API_KEY_HEADER = "x-api-key"  # call metadata carrying the caller's API key
REQUEST_ID_HEADER = "x-request-id"  # call metadata carrying the caller's request id (logged by every service)

PemSource = str | bytes | os.PathLike[str] | None


def retry_policy(max_attempts: int, initial_backoff_s: float, max_backoff_s: float) -> dict[str, Any]:
    """A gRPC retryPolicy for UNAVAILABLE only: the call did not reach a servicer, or the
    connection broke, so repeating it cannot run it twice. Attempts stay within the call's
    own deadline."""
    return {
        "maxAttempts": max_attempts,
        "initialBackoff": f"{initial_backoff_s:g}s",
        "maxBackoff": f"{max_backoff_s:g}s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }


def service_config(
    services: Sequence[str],
    max_attempts: int,
    *,
    initial_backoff_s: float,
    max_backoff_s: float,
    health_service: str = "",
) -> str:
    """The channel's service config (JSON): round_robin over every address the target
    resolves to (gRPC's default pick_first pins every call to one pod), retries on
    UNAVAILABLE for these services when max_attempts > 1, and client-side health checking
    of health_service when it is set (draining pods leave the rotation)."""
    config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if health_service:
        config["healthCheckConfig"] = {"serviceName": health_service}
    if max_attempts > 1:
        config["methodConfig"] = [
            {
                "name": [{"service": name} for name in services],
                "retryPolicy": retry_policy(max_attempts, initial_backoff_s, max_backoff_s),
            }
        ]
    return json.dumps(config)


def channel_options(
    service_config_json: str,
    *,
    retries: bool,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    server_name: str = "",
) -> list[tuple[str, Any]]:
    """Channel options: the service config, retries on or off, message limits both ways, and
    the name to verify in the server's certificate instead of the target's host."""
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", service_config_json),
        ("grpc.enable_retries", 1 if retries else 0),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


def _pem(value: PemSource) -> bytes | None:
    """PEM bytes from bytes, or from a file path; None for empty."""
    if not value:
        return None
    if isinstance(value, bytes):
        return value
    return pathlib.Path(value).read_bytes()


def channel_credentials(
    ca: PemSource = None, cert: PemSource = None, key: PemSource = None
) -> grpc.ChannelCredentials | None:
    """TLS credentials from PEM files (paths) or bytes; None when nothing is set (plaintext).

    ca: the CA bundle that signed the server's certificate; cert and key: this client's
    certificate for mTLS (servers started with tls_client_ca require one).
    """
    if bool(cert) != bool(key):
        raise ValueError("a client certificate and its key go together (mTLS)")
    if not ca and not cert:
        return None
    return grpc.ssl_channel_credentials(root_certificates=_pem(ca), private_key=_pem(key), certificate_chain=_pem(cert))
