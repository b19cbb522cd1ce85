"""The server runtime: one grpc.aio server with health, reflection, metrics and limits.

A service plugs in a Service (in the manner of Triton's python backend: load(), close(),
plus registering its servicer); the runtime owns everything around it. Shutdown on SIGTERM
is graceful: health goes NOT_SERVING, new calls are refused, in-flight calls get
`grace_s` to finish, then the service closes and the process exits 0.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import signal
from typing import ClassVar

import grpc
from grpc import aio
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

import imagetrust
from services.common.config import ServerConfig
from services.common.health import Health
from services.common.interceptors import ServerInterceptor
from services.common.metrics import Metrics
from services.common.tls import CertificateFiles

log = logging.getLogger("imagetrust.server")

# Seconds stop() waits for gRPC's own call tasks once the server has stopped. A call that
# ended during the drain (a client going away, a health Watch cut by the stop) still has a
# task that finishes a loop iteration or two after the server reports it stopped; asyncio.run
# cancels whatever is pending when serve_until_signal returns, and gRPC logs each such task
# as an ERROR with a traceback. They take milliseconds; the bound is for a task that never ends.
SETTLE_S = 1.0


async def _settle_call_tasks() -> None:
    """Waits (at most SETTLE_S) for the loop's other tasks: after the server and the service
    have stopped, those are gRPC's call tasks finishing."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    if others:
        await asyncio.wait(others, timeout=SETTLE_S)


class Service(abc.ABC):
    """What a service provides to the runtime.

    The server's health and metrics are made with the service (Service.__init__), so its
    own parts (the gateway's backend gauges, the registry's health name, the synthesis
    batcher's metrics) are built on them at construction; the runtime serves the same two
    objects (health on the gRPC port, the registry on /metrics).
    """

    #: short name used in logs and metrics: "gateway", "metadata", "synthesis"
    name: ClassVar[str]
    #: fully-qualified gRPC service names it serves, for health and reflection
    service_names: ClassVar[tuple[str, ...]]

    def __init__(self) -> None:
        self.health = Health(self.service_names)
        self.metrics = Metrics(self.name, imagetrust.__version__)

    @abc.abstractmethod
    def add_to_server(self, server: aio.Server) -> None:
        """Registers the servicer(s)."""

    async def load(self) -> None:
        """Gets ready to serve (load and warm models, connect stores). Health is
        NOT_SERVING until this returns."""

    async def close(self) -> None:
        """Releases resources after the last call finished."""

    def interceptors(self) -> list[aio.ServerInterceptor]:
        """Extra interceptors, run after the runtime's own (for example API keys)."""
        return []


def server_options(config: ServerConfig) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.keepalive_time_ms", int(config.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout_s * 1000)),
        ("grpc.max_connection_age_ms", int(config.max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(config.max_connection_age_grace_s * 1000)),
        # Accept client keepalive pings down to every 10 s, also without calls in flight,
        # so well-behaved clients are not disconnected with "too_many_pings".
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.so_reuseport", 0),
    ]


def _server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    if not config.tls_cert:
        return None
    # Re-read on rotation (cert-manager renewals) without a restart: services/common/tls.py.
    return CertificateFiles(
        config.tls_cert, config.tls_key, config.tls_client_ca, config.tls_reload_interval_s
    ).credentials()


class StartupError(Exception):
    """The service could not start; the reason is already logged."""


def log_startup_failure(name: str, exc: BaseException) -> None:
    """One line in the service's log format, so a crash-looping pod's logs say why (port in
    use, model, registry or policy unusable) instead of ending in a traceback."""
    log.error("%s failed to start: %s", name, exc, extra={"error": type(exc).__name__})


class ServerRuntime:
    def __init__(self, service: Service, config: ServerConfig) -> None:
        self.service = service
        self.config = config
        self.metrics = service.metrics
        self.health = service.health
        self.server: aio.Server | None = None
        self.port = 0
        self.metrics_port = 0
        self._stopped = asyncio.Event()

    def _configure_server(self) -> aio.Server:
        server = aio.server(
            interceptors=[ServerInterceptor(self.metrics.grpc), *self.service.interceptors()],
            options=server_options(self.config),
            maximum_concurrent_rpcs=self.config.max_concurrent_rpcs,
        )
        self.health.add_to_server(server)
        self.service.add_to_server(server)
        reflection.enable_server_reflection(
            (*self.service.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        return server

    async def start(self) -> None:
        """Binds, serves health (NOT_SERVING), loads the service, then turns SERVING."""
        self.server = self._configure_server()
        address = f"{self.config.host}:{self.config.port}"
        credentials = _server_credentials(self.config)
        try:
            if credentials is None:
                self.port = self.server.add_insecure_port(address)
            else:
                self.port = self.server.add_secure_port(address, credentials)
        except RuntimeError as exc:  # grpcio raises "Failed to bind to address ..." (a port in use)
            raise OSError(f"cannot bind the gRPC port {address}: {exc}") from None
        if self.config.metrics_port >= 0:
            self.metrics_port = self.metrics.serve(self.config.host, self.config.metrics_port)
        await self.health.set_all(False)
        await self.server.start()
        log.info(
            "%s listening",
            self.service.name,
            extra={"port": self.port, "metrics_port": self.metrics_port, "tls": credentials is not None},
        )
        await self.service.load()
        await self.health.set_all(True)
        log.info("%s ready", self.service.name)

    async def stop(self, grace_s: float | None = None) -> None:
        grace_s = self.config.grace_s if grace_s is None else grace_s
        log.info("%s draining", self.service.name, extra={"grace_s": grace_s})
        await self.health.shutdown()
        if self.server is not None:
            await self.server.stop(grace_s)
        await self.service.close()
        self.metrics.close()
        await _settle_call_tasks()
        self._stopped.set()
        log.info("%s stopped", self.service.name)

    async def serve_until_signal(self) -> None:
        """Runs until SIGTERM or SIGINT, then shuts down gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
        except Exception as exc:
            log_startup_failure(self.service.name, exc)
            await self.stop(0)  # release what did start: the loop closes without "Event loop is closed"
            raise StartupError(f"{self.service.name} failed to start: {exc}") from exc
        await stop.wait()
        await self.stop()
