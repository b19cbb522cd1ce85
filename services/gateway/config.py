"""The gateway's settings: server-wide ones (services/common/config.py) plus its own.

Each field is IMAGETRUST_<FIELD> and --<field-with-dashes>; the help text says what it
does, the comment above it why the default is what it is. docs/gateway.md tells how to tune them.
"""

from __future__ import annotations

import dataclasses

from services.common.config import ServerConfig, setting


@dataclasses.dataclass(frozen=True)
class GatewayConfig(ServerConfig):
    port: int = setting(50051, "gRPC port")
    metrics_port: int = setting(9091, "Prometheus /metrics HTTP port (-1: off)")
    synthesis_addr: str = setting(
        "localhost:50053",
        "synthesis target: host:port, a comma-separated host:port list (replicas), or dns:///name:port",
    )
    metadata_addr: str = setting(
        "localhost:50052",
        "metadata target: host:port, a comma-separated host:port list (replicas), or dns:///name:port",
    )
    # 3 s: an upload must not wait longer for a verdict; backends get their share of it.
    default_budget_ms: int = setting(3000, "time budget per image when the caller sets no deadline, ms")
    policy_path: str = setting("", "YAML decision policy (empty: the built-in default)")
    # Per-backend caps inside the image's budget (0: no cap, the whole remaining budget).
    # Both backends run at the same time, so each may use the budget up to its cap.
    synthesis_budget_ms: int = setting(0, "most of the budget the synthesis call may use, ms (0: all of it)")
    metadata_budget_ms: int = setting(0, "most of the budget the metadata call may use, ms (0: all of it)")
    # 500 ms: a dead backend is skipped within half a second, for one tiny RPC per backend
    # and interval.
    backend_health_interval_ms: int = setting(500, "interval of the gateway's health probes to each backend, ms")
    backend_health_timeout_ms: int = setting(1000, "a backend whose health probe takes longer is down, ms")
    # 8: enough images in flight to hide one backend round trip on a chat stream, bounded
    # so one stream cannot take the whole server.
    stream_window: int = setting(8, "images of one CheckStream processed at once (order is kept)")
    # 256 items: enough to amortise one call over many small images; larger back-fills send
    # several batches (a batch must also fit in max_message_bytes).
    batch_max_items: int = setting(256, "most images in one CheckBatch (more: INVALID_ARGUMENT)")
    batch_concurrency: int = setting(8, "images of one CheckBatch processed at once")
    # Client side of TLS/mTLS to the backends (their servers set tls_cert/tls_key/tls_client_ca).
    backend_tls_ca: str = setting("", "PEM CA bundle that signed the backends' certificates (empty: plaintext)")
    backend_tls_cert: str = setting("", "PEM client certificate chain for mTLS to the backends")
    backend_tls_key: str = setting("", "PEM private key for backend_tls_cert")
    backend_tls_server_name: str = setting("", "name to verify in the backends' certificates (empty: the host)")
    # API keys are stored hashed: "client-name sha256hex" per line in the file, or
    # "client-name=sha256hex,..." in the environment. Off when both are empty.
    api_keys_file: str = setting("", "file of allowed API-key hashes, one 'client-name sha256hex' per line")
    api_key_hashes: tuple[str, ...] = setting((), "allowed API-key hashes as client-name=sha256hex, comma-separated")

    def validate(self) -> None:
        super().validate()
        for name in (
            "stream_window",
            "batch_max_items",
            "batch_concurrency",
            "backend_health_interval_ms",
            "backend_health_timeout_ms",
            "default_budget_ms",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.synthesis_budget_ms < 0 or self.metadata_budget_ms < 0:
            raise ValueError("synthesis_budget_ms and metadata_budget_ms must be >= 0")
        if bool(self.backend_tls_cert) != bool(self.backend_tls_key):
            raise ValueError("backend_tls_cert and backend_tls_key must be set together")
        if self.backend_tls_cert and not self.backend_tls_ca:
            raise ValueError("backend_tls_cert (mTLS to the backends) needs backend_tls_ca")
