"""Picks the backend from the metadata config: Redis when a URL is set (sharded over the
slots of a Redis Cluster when redis_cluster is on), else SQLite."""

from __future__ import annotations

from services.common.config import MetadataConfig
from services.metadata.registry.base import Registry


def open_registry(config: MetadataConfig) -> Registry:
    if config.redis_url and config.redis_cluster:
        from services.metadata.registry.redis_cluster_backend import RedisClusterRegistry

        return RedisClusterRegistry(
            config.redis_url,
            prefix=config.registry_prefix,
            ttl_s=config.registry_ttl_s,
            wait_replicas=config.registry_wait_replicas,
            wait_timeout_ms=config.registry_wait_timeout_ms,
        )
    if config.redis_url:
        from services.metadata.registry.redis_backend import RedisRegistry

        return RedisRegistry(config.redis_url, prefix=config.registry_prefix, ttl_s=config.registry_ttl_s)
    from services.metadata.registry.sqlite_backend import SqliteRegistry

    return SqliteRegistry(config.registry_path, ttl_s=config.registry_ttl_s)
