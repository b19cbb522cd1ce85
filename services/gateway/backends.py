"""Channels to the backend services, and the health watch that skips a dead backend.

Load balancing: round_robin over every address a target resolves to (dns:///synthesis:50053
behind a headless Kubernetes Service, or a comma-separated list of host:port replicas), so a
scaled-out Deployment is actually used: gRPC's default pick_first would pin every call to
one pod. Client-side health checking (healthCheckConfig) keeps draining or NOT_SERVING pods
out of the rotation.

Health watch: one background task per backend probes grpc.health.v1 Check through the same
channel every `backend_health_interval_ms`. A probe goes only to pods the balancer considers
healthy, so "down" means no pod answers SERVING. While a backend is down the checker skips
it at once (a degraded verdict in microseconds instead of a wait for the deadline); the
probes go on and bring it back as soon as it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imagetrust import channel
from imagetrust.v1 import metadata_pb2, metadata_pb2_grpc, synthesis_pb2, synthesis_pb2_grpc
from services.common.tls import WatchedFiles
from services.gateway.config import GatewayConfig
from services.gateway.metrics import GatewayMetrics

log = logging.getLogger("imagetrust.gateway.backends")

_MAX_CAUSE_CHARS = 160  # characters of a gRPC error kept in reasons and logs
# Seconds an old channel may finish its calls after a certificate rotation: above the
# gateway's longest backend deadline.
OLD_CHANNEL_GRACE_S = 60.0

SYNTHESIS_SERVICE = synthesis_pb2.DESCRIPTOR.services_by_name["SynthesisDetector"].full_name
METADATA_SERVICE = metadata_pb2.DESCRIPTOR.services_by_name["MetadataAnalyzer"].full_name


# Seconds between retries of a backend call that did not reach a servicer: short, since the
# whole call lives inside the image's budget (a few seconds at most).
RETRY_INITIAL_BACKOFF_S = 0.02
RETRY_MAX_BACKOFF_S = 0.2
MAX_ATTEMPTS = 3  # tries per backend call, first included (UNAVAILABLE only)


def service_config(health_service: str) -> str:
    # Retries only for UNAVAILABLE: the call did not reach a servicer, or the connection broke.
    # Detect is a pure function of the image; Analyze with register=true is idempotent by
    # (image, listing) in the reuse registry, so repeating either cannot double-count.
    # Attempts are bounded by the call's own deadline (the per-backend budget).
    return channel.service_config(
        (SYNTHESIS_SERVICE, METADATA_SERVICE),
        MAX_ATTEMPTS,
        initial_backoff_s=RETRY_INITIAL_BACKOFF_S,
        max_backoff_s=RETRY_MAX_BACKOFF_S,
        health_service=health_service,
    )


def channel_options(config: GatewayConfig, health_service: str) -> list[tuple[str, Any]]:
    options = channel.channel_options(
        service_config(health_service),
        retries=True,
        max_message_bytes=config.max_message_bytes,
        server_name=config.backend_tls_server_name,
    )
    return [
        *options,
        # Reconnect quickly after a backend restarts (gRPC's default backoff grows to 120 s).
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
        ("grpc.keepalive_time_ms", 30_000),
    ]


# gRPC name-resolver schemes: a target starting with one is passed to gRPC as it is.
_RESOLVER_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:", "xds:")


def _literal(host: str) -> tuple[str, str]:
    """('ipv4'|'ipv6', address) for an IP literal or a name resolved once now."""
    host = host.strip("[]")
    if host == "localhost":
        return "ipv4", "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        *_, sockaddr = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0]
        ip = ipaddress.ip_address(sockaddr[0])
    return ("ipv6", f"[{ip}]") if ip.version == 6 else ("ipv4", str(ip))


def grpc_target(addr: str) -> str:
    """A gRPC target from a config address.

    - "host:port" and "dns:///name:port" pass through (the DNS resolver re-resolves, so pods
      added to a headless Service are picked up);
    - "h1:p1,h2:p2,..." (several local replicas) becomes "ipv4:a1:p1,a2:p2", resolving names
      once at start-up (use dns:/// for names whose addresses change).
    """
    addr = addr.strip()
    if "," not in addr or addr.startswith(_RESOLVER_SCHEMES):
        return addr  # one address, or already a gRPC target with its own resolver
    families, parts = set(), []
    for item in (a.strip() for a in addr.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"backend address list item {item!r} is not host:port")
        family, ip = _literal(host)
        families.add(family)
        parts.append(f"{ip}:{port}")
    if len(families) != 1:
        raise ValueError(f"backend address list {addr!r} mixes IPv4 and IPv6; use one family")
    return f"{families.pop()}:{','.join(parts)}"


class Backend:
    """One backend service: a balanced channel, a stub, and whether it is up."""

    def __init__(
        self,
        name: str,
        health_service: str,
        stub_class: type,
        addr: str,
        config: GatewayConfig,
        metrics: GatewayMetrics,
    ) -> None:
        self.name = name
        self.health_service = health_service
        self.target = grpc_target(addr)
        self.interval_s = config.backend_health_interval_ms / 1000.0
        self.probe_timeout_s = config.backend_health_timeout_ms / 1000.0
        self.metrics = metrics
        self._stub_class = stub_class
        self._options = channel_options(config, health_service)
        # Client TLS files, re-read on rotation (services/common/tls.py): a renewed client
        # certificate gets a new channel; the old one finishes its calls.
        self._tls = (
            WatchedFiles(
                config.backend_tls_ca,
                config.backend_tls_cert,
                config.backend_tls_key,
                check_interval_s=config.tls_reload_interval_s,
            )
            if config.backend_tls_ca
            else None
        )
        self._retired: set[asyncio.Task] = set()
        # The channel and its stubs, made by start(): aio channels bind to the running loop.
        self.channel: aio.Channel | None = None
        self._stub: Any = None
        self._health: health_pb2_grpc.HealthStub | None = None
        # None until the first probe: calls are tried, not skipped, while we do not know.
        self.up: bool | None = None
        self.down_cause = ""
        self._down_since = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        metrics.backend_up.labels(name).set(1)

    def _open(self, pems: tuple[bytes, ...] | None) -> None:
        """A channel (and its stubs) with these PEM contents (ca[, cert, key]), or plaintext."""
        credentials = channel.channel_credentials(*pems) if pems else None
        self.channel = (
            aio.secure_channel(self.target, credentials, options=self._options)
            if credentials is not None
            else aio.insecure_channel(self.target, options=self._options)
        )
        self._stub = self._stub_class(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    @property
    def stub(self) -> Any:
        """The backend's stub on the current channel (a certificate rotation swaps both)."""
        if self._stub is None:
            raise RuntimeError(f"the {self.name} backend is not started")
        return self._stub

    def _reload_tls(self) -> None:
        """Switches to a new channel when the TLS files changed; calls in flight on the old
        one finish (closed with a grace) while new calls take the new one."""
        pems = self._tls.changed() if self._tls else None
        if pems is None:
            return
        old = self.channel
        self._open(pems)
        if old is None:
            return
        task = asyncio.get_running_loop().create_task(old.close(grace=OLD_CHANNEL_GRACE_S))
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)
        log.info("%s: TLS files changed, new channel", self.name, extra={"backend": self.name})

    @property
    def known_down(self) -> bool:
        return self.up is False

    def start(self) -> None:
        """Opens the channel and starts the health watch (inside the running event loop)."""
        self._open(self._tls.contents if self._tls else None)
        self._task = asyncio.get_running_loop().create_task(self._watch(), name=f"health-{self.name}")

    def suspect(self) -> None:
        """A call failed as if the backend were gone: probe now rather than at the next tick."""
        self._wake.set()

    async def probe(self) -> tuple[bool, str]:
        if self._health is None:
            return False, "not started"
        try:
            reply = await self._health.Check(
                health_pb2.HealthCheckRequest(service=self.health_service), timeout=self.probe_timeout_s
            )
        except aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                # A server without grpc.health.v1: judge it by its calls, not by probes.
                return True, ""
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return False, f"health probe unanswered after {self.probe_timeout_s * 1000:.0f} ms"
            return False, f"health probe {exc.code().name}: {(exc.details() or '')[:_MAX_CAUSE_CHARS]}"
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return False, f"health {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
        return True, ""

    def _set(self, up: bool, cause: str) -> None:
        if up and self.up is False:
            log.info(
                "%s is back",
                self.name,
                extra={"backend": self.name, "down_s": round(time.monotonic() - self._down_since, 2)},
            )
        elif not up and self.up is not False:
            self._down_since = time.monotonic()
            log.warning("%s is down: %s; skipping it until it answers", self.name, cause, extra={"backend": self.name})
        self.up, self.down_cause = up, cause
        self.metrics.backend_up.labels(self.name).set(1 if up else 0)

    async def _watch(self) -> None:
        while True:
            try:
                self._reload_tls()
                up, cause = await self.probe()
            except Exception as exc:  # noqa: BLE001 - the watch must outlive any surprise
                up, cause = False, f"health probe failed: {exc!r}"
            self._set(up, cause)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.channel is not None:
            await self.channel.close()
        for task in list(self._retired):
            task.cancel()


class Backends:
    def __init__(self, config: GatewayConfig, metrics: GatewayMetrics) -> None:
        self.synthesis = Backend(
            "synthesis",
            SYNTHESIS_SERVICE,
            synthesis_pb2_grpc.SynthesisDetectorStub,
            config.synthesis_addr,
            config,
            metrics,
        )
        self.metadata = Backend(
            "metadata", METADATA_SERVICE, metadata_pb2_grpc.MetadataAnalyzerStub, config.metadata_addr, config, metrics
        )

    # Looked up per call: a certificate rotation swaps a backend's channel and stub.
    @property
    def synthesis_stub(self) -> synthesis_pb2_grpc.SynthesisDetectorStub:
        return self.synthesis.stub

    @property
    def metadata_stub(self) -> metadata_pb2_grpc.MetadataAnalyzerStub:
        return self.metadata.stub

    def start(self) -> None:
        self.synthesis.start()
        self.metadata.start()

    async def close(self) -> None:
        await self.synthesis.close()
        await self.metadata.close()
