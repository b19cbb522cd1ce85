"""The gateway's own metrics, on the server's collector registry (next to the shared gRPC metrics).

Labels are bounded: backend names are fixed, outcomes are gRPC code names, and the policy
label is a platform named in the policy file (or "default"), never a caller's free text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS_S


class GatewayMetrics:
    def __init__(self, collector_registry: CollectorRegistry) -> None:
        self.backend_up = Gauge(
            "imagetrust_gateway_backend_up",
            "1 while the backend answers its health probe as SERVING, 0 while it is skipped as down.",
            ("backend",),
            registry=collector_registry,
        )
        self.backend_calls = Counter(
            "imagetrust_gateway_backend_calls",
            "Calls to a backend by outcome (a gRPC code name, or SKIPPED_DOWN when it was known down).",
            ("backend", "outcome"),
            registry=collector_registry,
        )
        self.backend_seconds = Histogram(
            "imagetrust_gateway_backend_seconds",
            "Backend call latency seen by the gateway, seconds.",
            ("backend",),
            buckets=LATENCY_BUCKETS_S,
            registry=collector_registry,
        )
        self.decisions = Counter(
            "imagetrust_gateway_decisions",
            "Verdicts by decision, policy (platform or default) and whether they were degraded.",
            ("decision", "policy", "degraded"),
            registry=collector_registry,
        )
