"""The reuse registry's Prometheus metrics, on the metadata server's own registry.

What an SRE needs that gRPC metrics do not show: whether the registry answers (Redis can be
up while this service cannot reach it: a NetworkPolicy, a failover, unacknowledged
replication), how long the registry step takes, and what it finds (reuse by other sellers
is the business signal; a sudden drop to zero usually means the registry is not writing).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.metadata.registry.model import LookupResult

# Seconds: one lookup is ~1 ms on loopback Redis, tens of ms when the network or the
# 500 ms socket timeout is involved; the fingerprinting before it is not included.
LOOKUP_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class RegistryMetrics:
    def __init__(self, registry: CollectorRegistry | None, backend: str) -> None:
        self.backend = backend
        self.up = Gauge(
            "imagetrust_registry_up",
            "1 while the reuse registry answers (health pings and lookups), else 0.",
            ("backend",),
            registry=registry,
        )
        self.lookups = Counter(
            "imagetrust_registry_lookups",
            "Registry steps by outcome: registered, looked_up (register=false), unavailable, not_fingerprinted.",
            ("backend", "outcome"),
            registry=registry,
        )
        self.seconds = Histogram(
            "imagetrust_registry_lookup_seconds",
            "Time of one registry lookup (and registration), seconds.",
            ("backend",),
            buckets=LOOKUP_BUCKETS_S,
            registry=registry,
        )
        self.matches = Counter(
            "imagetrust_registry_matches",
            "Prior sightings returned, by match kind.",
            ("kind",),
            registry=registry,
        )
        self.findings = Counter(
            "imagetrust_registry_findings",
            "Registry findings, by code (REUSED_BY_OTHER_SELLER, ...).",
            ("code",),
            registry=registry,
        )

    def set_available(self, available: bool) -> None:
        self.up.labels(self.backend).set(1 if available else 0)

    def observe(self, result: LookupResult, seconds: float | None, fingerprinted: bool) -> None:
        if not fingerprinted:
            outcome = "not_fingerprinted"
        elif not result.available:
            outcome = "unavailable"
        else:
            outcome = "registered" if result.registered else "looked_up"
        self.lookups.labels(self.backend, outcome).inc()
        if seconds is not None:
            self.seconds.labels(self.backend).observe(seconds)
        for match in result.matches:
            self.matches.labels(match.kind.name.lower()).inc()
        for finding in result.findings:
            self.findings.labels(finding.code).inc()
