"""Typed configuration: frozen dataclasses read from the environment and flags, in one place.

Every field maps to an environment variable IMAGETRUST_<FIELD> and a command-line flag
--<field-with-dashes>; a flag wins over the environment, which wins over the default. The
CLI builds its flags from these classes, so a new setting is added in exactly one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

ENV_PREFIX = "IMAGETRUST_"
MIB = 1024 * 1024  # bytes

C = TypeVar("C")


def setting(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse's name
    """A config field with its help text; the env name is derived from the field name."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for sequence defaults: configs are frozen")
    return dataclasses.field(default=default, metadata={"help": help})


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _parse(raw: str, typ: Any, name: str) -> Any:
    origin = typing.get_origin(typ)
    if typ is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{env_name(name)}: expected a boolean, got {raw!r}")
    if typ in (int, float):
        try:
            return typ(raw)
        except ValueError:  # int()'s own message names neither the setting nor the type
            raise ValueError(f"{env_name(name)}: expected {'an integer' if typ is int else 'a number'}, "
                             f"got {raw!r}") from None
    if typ is str:
        return raw
    if origin is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    raise TypeError(f"unsupported config type {typ!r} for {name}")


def load(cls: type[C], environ: Mapping[str, str] | None = None, **overrides: Any) -> C:
    """Builds cls from overrides (None means "not given"), then the environment, then defaults."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if overrides.get(f.name) is not None:
            value = overrides[f.name]
            if isinstance(value, str) and hints[f.name] is not str:
                value = _parse(value, hints[f.name], f.name)
            values[f.name] = value
        elif env_name(f.name) in environ:
            values[f.name] = _parse(environ[env_name(f.name)], hints[f.name], f.name)
    config = cls(**values)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Adds one --flag per field of cls; every flag defaults to None ("not given")."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} (flags override {ENV_PREFIX}* variables)")
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} [env {env_name(f.name)}, default {f.default!r}]"
        if hints[f.name] is bool:
            group.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            group.add_argument(flag, dest=f.name, default=None, help=help_text)


def from_args(cls: type[C], args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> C:
    names = {f.name for f in dataclasses.fields(cls)}
    return load(cls, environ, **{k: v for k, v in vars(args).items() if k in names})


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Settings every ImageTrust gRPC server has."""

    host: str = setting("0.0.0.0", "address to listen on")
    port: int = setting(0, "gRPC port (0: pick a free one)")
    metrics_port: int = setting(0, "Prometheus /metrics HTTP port (0: pick a free one, -1: off)")
    # 32 MiB: phone photos (12-50 MP JPEG/HEIC) exceed gRPC's 4 MiB default.
    max_message_bytes: int = setting(32 * MIB, "largest request/response message, bytes")
    # 20 s: long enough for a queued CNN batch to finish, short of Kubernetes' 30 s default
    # terminationGracePeriodSeconds.
    grace_s: float = setting(20.0, "seconds to finish in-flight calls on SIGTERM")
    # 120 MP: above the 108 MP phone sensors, far below what a decompression bomb declares.
    max_pixels: int = setting(120_000_000, "largest decoded image, pixels")
    max_concurrent_rpcs: int = setting(1024, "calls served at once; more get RESOURCE_EXHAUSTED")
    # Keepalive pings find dead peers behind NATs and load balancers; 60 s / 20 s is well
    # above gRPC's minimum ping interval so clients are not sent GOAWAY for pinging.
    keepalive_time_s: float = setting(60.0, "seconds between server keepalive pings")
    keepalive_timeout_s: float = setting(20.0, "seconds to wait for a keepalive ack")
    # 5 min: clients reconnect (and so re-resolve and re-balance across pods behind a
    # Kubernetes Service) at least this often; the grace lets their open calls finish.
    max_connection_age_s: float = setting(300.0, "seconds before a connection is asked to go away")
    max_connection_age_grace_s: float = setting(30.0, "seconds an aged connection may finish calls")
    # TLS is off by default (loopback, `imagetrust up`); production sets all three for mTLS.
    tls_cert: str = setting("", "PEM server certificate chain (empty: plaintext)")
    tls_key: str = setting("", "PEM private key for tls_cert")
    tls_client_ca: str = setting("", "PEM CA bundle; when set, clients must present a certificate it signed (mTLS)")
    # 5 s: a renewal lands hours to days before expiry; a handshake must not stat files each time.
    tls_reload_interval_s: float = setting(5.0, "seconds between checks of the TLS files for a rotated certificate")
    log_level: str = setting("INFO", "logging level")
    log_format: str = setting("json", "log format: json or text")

    def validate(self) -> None:
        if self.max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")
        if self.log_format not in ("json", "text"):
            raise ValueError("log_format must be json or text")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be set together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca (mTLS) needs tls_cert and tls_key")


@dataclasses.dataclass(frozen=True)
class GatewayConfig(ServerConfig):
    port: int = setting(50051, "gRPC port")
    metrics_port: int = setting(9091, "Prometheus /metrics HTTP port (-1: off)")
    synthesis_addr: str = setting("localhost:50053", "synthesis target: host:port, a comma-separated host:port list (replicas), or dns:///name:port")
    metadata_addr: str = setting("localhost:50052", "metadata target: host:port, a comma-separated host:port list (replicas), or dns:///name:port")
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
        for name in ("stream_window", "batch_max_items", "batch_concurrency", "backend_health_interval_ms",
                     "backend_health_timeout_ms", "default_budget_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.synthesis_budget_ms < 0 or self.metadata_budget_ms < 0:
            raise ValueError("synthesis_budget_ms and metadata_budget_ms must be >= 0")
        if bool(self.backend_tls_cert) != bool(self.backend_tls_key):
            raise ValueError("backend_tls_cert and backend_tls_key must be set together")
        if self.backend_tls_cert and not self.backend_tls_ca:
            raise ValueError("backend_tls_cert (mTLS to the backends) needs backend_tls_ca")


@dataclasses.dataclass(frozen=True)
class MetadataConfig(ServerConfig):
    port: int = setting(50052, "gRPC port")
    metrics_port: int = setting(9092, "Prometheus /metrics HTTP port (-1: off)")
    redis_url: str = setting("", "reuse registry in Redis, e.g. redis://host:6379/0 (empty: embedded SQLite)")
    # Off: the whole registry under one hash tag (one slot, so one node: a Redis Cluster
    # holds it on one shard). On: keys sharded over every slot, for a Redis Cluster (the URL
    # names any node, e.g. a managed service's configuration endpoint). The two layouts do
    # not read each other's keys (docs/registry.md).
    redis_cluster: bool = setting(False, "shard the Redis registry over every node of a Redis Cluster")
    registry_path: str = setting("", "embedded SQLite registry file (empty: ~/.local/share/imagetrust/registry.sqlite3)")
    registry_prefix: str = setting("imagetrust", "key prefix in Redis")
    # 0: keep sightings until deleted; platforms with retention rules set e.g. 180 days.
    registry_ttl_s: int = setting(0, "seconds a sighting is kept (0: forever)")
    # Every check on up to the pixel limit: both read the request's one shared decode (the
    # full-resolution luminance, ~0.5x a colour decode), so on a 12 MP photo the
    # double-compression check adds ~2 ms and the thumbnail comparison under 1 ms
    # (docs/metadata.md, "Performance"). Lower them to shed the full-resolution decode:
    # under both limits the decode is DCT-scaled to the smallest view the checks need.
    double_jpeg_max_pixels: int = setting(120_000_000, "largest JPEG checked for double compression, pixels")
    thumbnail_max_pixels: int = setting(120_000_000, "largest image compared with its EXIF thumbnail, pixels")
    # 0: one per CPU the process may use. Each worker holds at most one request's decode at
    # a time (~25 MB for a 12 MP photo, docs/metadata.md), so this also bounds the memory.
    analysis_workers: int = setting(0, "threads analysing uploads at once (0: one per CPU)")
    # A registry migration (docs/metadata.md, "Pixel identity key"): also look up images registered
    # under the SHA-256 pixel key, at the cost of a full colour decode and hash per request.
    legacy_pixel_key: bool = setting(False, "also match images registered under the legacy SHA-256 pixel key")
    # 2 s: a Redis outage (and its recovery) shows in health within a probe period.
    registry_health_interval_s: float = setting(2.0, "seconds between registry health pings")
    # Sharded layout only (redis_cluster): after the step that creates a new image id, Redis
    # WAIT for this many replicas of that node to acknowledge it before any index entry names
    # the id, so a failover to one of them cannot roll the id back and re-issue it
    # (docs/registry.md, "Failover"). 0: off, for installs without replicas (dev, `imagetrust
    # up`: WAIT 1 there would fail every new image); production with replicas sets 1.
    registry_wait_replicas: int = setting(
        0, "replicas that must acknowledge a new image id before it is indexed (sharded Redis; 0: off)")
    # 50 ms, in milliseconds as WAIT takes it: a replica in the same region acknowledges in
    # about a network round trip (the primary asks at once, REPLCONF GETACK), so 50 ms only
    # runs out when a replica is down or far behind; then the registration answers
    # registry-unavailable instead of stalling Analyze. Must stay below the Redis socket
    # timeout (redis_common.SOCKET_TIMEOUT_S, 500 ms), which would otherwise cut the wait.
    registry_wait_timeout_ms: int = setting(50, "longest wait for those replicas, ms")

    def validate(self) -> None:
        super().validate()
        if self.redis_cluster and not self.redis_url:
            raise ValueError("redis_cluster needs redis_url (any node of the cluster)")
        if self.registry_wait_replicas < 0:
            raise ValueError("registry_wait_replicas must be >= 0")
        if self.analysis_workers < 0:
            raise ValueError("analysis_workers must be >= 0")
        # WAIT 0 ms would block until the replicas answer, i.e. forever while one is down. (The
        # upper bound, the socket timeout, is checked by the registry, which owns that timeout.)
        if self.registry_wait_timeout_ms <= 0:
            raise ValueError("registry_wait_timeout_ms must be positive")


@dataclasses.dataclass(frozen=True)
class SynthesisConfig(ServerConfig):
    port: int = setting(50053, "gRPC port")
    metrics_port: int = setting(9093, "Prometheus /metrics HTTP port (-1: off)")
    model_path: str = setting("", "checkpoint file (empty: the default model shipped in the package)")
    device: str = setting("auto", "torch device: auto, cpu, cuda, cuda:N")
    # An image is 1 global view + up to the checkpoint's max_tiles tiles (40 for the shipped
    # model): model inputs, not images, are what a forward pass batches. 64: with the shipped
    # model on CPU, 48-64 ran 0.58 ms per input at concurrency 16 against 0.96 ms at 32 (a
    # slower oneDNN kernel choice), 0.77 at 128 and 1.26 at 1024 (batches outgrow the caches);
    # 64 also holds one large photo's 41 inputs in one pass. GPUs want more.
    max_batch_size: int = setting(64, "model inputs (global views and tiles) per forward pass")
    # 5 ms: long enough to gather concurrent requests into one batch, short next to a
    # forward pass (tens of ms on CPU).
    max_queue_delay_ms: float = setting(5.0, "longest wait to fill a batch, ms")
    # Off = Triton without dynamic batching: a forward pass holds one request's inputs (its
    # tiles still batch together). The benchmark's baseline; also an option when requests
    # already carry enough inputs to fill the device.
    dynamic_batching: bool = setting(True, "batch model inputs across requests (off: one request per forward pass)")
    # 2048 inputs: about 50 large photos of the shipped model (41 inputs each) may wait; at
    # 256 only 6 could, so a modest burst was refused. ~100 MB of tensors at most.
    max_queue_size: int = setting(2048, "queued model inputs; more get RESOURCE_EXHAUSTED")
    decode_workers: int = setting(2, "threads decoding images off the event loop")
    # 0: every core the process may use (sched_getaffinity), which is what a CPU pod's
    # limit grants; set lower when decode threads should keep a core for themselves.
    torch_threads: int = setting(0, "intra-op threads for CPU inference (0: all available cores)")
    # CPU: "auto" is float32 (scores exactly as calibrated); "bf16" is an opt-in speed-up on
    # CPUs with native bf16, refused at start-up where oneDNN would only emulate it.
    precision: str = setting("auto", "autocast: auto (CUDA: bf16 where supported, else fp16; CPU: fp32), "
                                     "bf16 (CUDA, or CPU with AVX512-BF16/AMX), fp16 (CUDA), fp32")
    # 2 passes per batch shape and size: the first allocates and (on CUDA) autotunes
    # kernels, the second confirms the steady state before health turns SERVING.
    warmup_iterations: int = setting(2, "warm-up forward passes per input shape and batch size")

    def validate(self) -> None:
        super().validate()
        if self.max_batch_size < 1 or self.max_queue_size < 1 or self.max_queue_delay_ms < 0:
            raise ValueError("max_batch_size and max_queue_size must be >= 1, max_queue_delay_ms >= 0")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ValueError("precision must be auto, bf16, fp16 or fp32")
