"""The metadata service's settings: server-wide ones (services/common/config.py) plus its
own (pixel-check limits, the reuse registry).

Each field is IMAGETRUST_<FIELD> and --<field-with-dashes>; the help text says what it
does, the comment above it why the default is what it is. docs/metadata.md and
docs/registry.md tell how to tune them.
"""

from __future__ import annotations

import dataclasses

from services.common.config import ServerConfig, setting


@dataclasses.dataclass(frozen=True)
class MetadataConfig(ServerConfig):
    port: int = setting(50052, "gRPC port")
    metrics_port: int = setting(9092, "Prometheus /metrics HTTP port (-1: off)")
    # redis+sentinel://h1:26379,h2:26379/<service_name>/<db>: the primary a Sentinel group
    # names, followed across failovers (services/metadata/registry/redis_url.py).
    redis_url: str = setting(
        "",
        "reuse registry in Redis: redis://host:6379/0, or "
        "redis+sentinel://sentinel1:26379,sentinel2:26379/service_name/0 "
        "(empty: embedded SQLite)",
    )
    # Off: the whole registry under one hash tag (one slot, so one node: a Redis Cluster
    # holds it on one shard). On: keys sharded over every slot, for a Redis Cluster (the URL
    # names any node, e.g. a managed service's configuration endpoint). The two layouts do
    # not read each other's keys (docs/registry.md).
    redis_cluster: bool = setting(False, "shard the Redis registry over every node of a Redis Cluster")
    registry_path: str = setting(
        "", "embedded SQLite registry file (empty: ~/.local/share/imagetrust/registry.sqlite3)"
    )
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
    # A registry migration (docs/metadata.md, "Pixel identity key"): also look up images
    # registered under the SHA-256 pixel key, at the cost of a full colour decode and hash per request.
    legacy_pixel_key: bool = setting(False, "also match images registered under the legacy SHA-256 pixel key")
    # 2 s: a Redis outage (and its recovery) shows in health within a probe period.
    registry_health_interval_s: float = setting(2.0, "seconds between registry health pings")
    # Sharded layout only (redis_cluster): after the step that creates a new image id, Redis
    # WAIT for this many replicas of that node to acknowledge it before any index entry names
    # the id, so a failover to one of them cannot roll the id back and re-issue it
    # (docs/registry.md, "Failover"). 0: off, for installs without replicas (dev, `imagetrust
    # up`: WAIT 1 there would fail every new image); production with replicas sets 1.
    registry_wait_replicas: int = setting(
        0, "replicas that must acknowledge a new image id before it is indexed (sharded Redis; 0: off)"
    )
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
        from services.metadata.registry.redis_url import is_sentinel, parse_sentinel

        if is_sentinel(self.redis_url):
            if self.redis_cluster:
                raise ValueError(
                    "redis_cluster and a redis+sentinel:// URL exclude each other: a Redis Cluster fails over by itself"
                )
            parse_sentinel(self.redis_url)  # a malformed URL fails at start-up, naming the part
        if self.registry_wait_replicas < 0:
            raise ValueError("registry_wait_replicas must be >= 0")
        if self.analysis_workers < 0:
            raise ValueError("analysis_workers must be >= 0")
        # WAIT 0 ms would block until the replicas answer, i.e. forever while one is down. (The
        # upper bound, the socket timeout, is checked by the registry, which owns that timeout.)
        if self.registry_wait_timeout_ms <= 0:
            raise ValueError("registry_wait_timeout_ms must be positive")
