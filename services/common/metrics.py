"""Prometheus metrics: a collector registry per server and the gRPC server metrics every service has.

Metric names follow go-grpc-prometheus (grpc_server_started_total, ..._handled_total,
..._handling_seconds), so the dashboards and alerts SREs already have work unchanged.
py-grpc-prometheus provides these only for the synchronous server, hence the small
interceptor in interceptors.py that feeds them for grpc.aio.

Each server owns a CollectorRegistry rather than the process-global one, so several
servers can run in one process (the tests start several) without collisions.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

# Seconds. Spans a cache-hit lookup (~1 ms) to a slow CPU batch (several seconds).
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GrpcServerMetrics:
    def __init__(self, collector_registry: CollectorRegistry) -> None:
        labels = ("grpc_type", "grpc_service", "grpc_method")
        self.started = Counter(
            "grpc_server_started", "RPCs started on the server.", labels, registry=collector_registry
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code.",
            (*labels, "grpc_code"),
            registry=collector_registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from RPC start to its last response, seconds.",
            labels,
            buckets=LATENCY_BUCKETS_S,
            registry=collector_registry,
        )
        self.in_flight = Gauge(
            "grpc_server_in_flight",
            "RPCs being handled now.",
            ("grpc_service", "grpc_method"),
            registry=collector_registry,
        )
        self.msg_received = Counter(
            "grpc_server_msg_received", "Stream messages received.", labels, registry=collector_registry
        )
        self.msg_sent = Counter("grpc_server_msg_sent", "Stream messages sent.", labels, registry=collector_registry)


class Metrics:
    """The collector registry of one server, its gRPC metrics, and the /metrics HTTP endpoint."""

    def __init__(self, service: str, version: str) -> None:
        self.collector_registry = CollectorRegistry(auto_describe=True)
        self.grpc = GrpcServerMetrics(self.collector_registry)
        Info("imagetrust_build", "Build information.", registry=self.collector_registry).info(
            {"service": service, "version": version}
        )
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, host: str, port: int) -> int:
        """Starts /metrics on host:port (0: a free port) and returns the bound port."""
        self._httpd, self._thread = start_http_server(port, addr=host, registry=self.collector_registry)
        return self._httpd.server_port

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
