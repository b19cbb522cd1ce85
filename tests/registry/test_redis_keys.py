"""Redis-only properties: the key schema (one hash tag per prefix), prefixes, TTL on keys."""

from __future__ import annotations

import redis

from services.metadata.registry.model import Sighting
from services.metadata.registry.redis_backend import RedisRegistry
from tests.registry.conftest import make_fp


def test_every_key_carries_the_prefix_hash_tag_and_prefixes_are_isolated(redis_server):
    a = RedisRegistry(redis_server.url, prefix="tenant-a")
    b = RedisRegistry(redis_server.url, prefix="tenant-b")
    a.lookup(make_fp(1, uid="X"), Sighting("alice", "l1"), register=True)
    assert b.lookup(make_fp(1, uid="X"), Sighting("bob", "l2"), register=False).matches == ()
    assert len(a.lookup(make_fp(1, uid="X"), Sighting("bob", "l2"), register=False).matches) == 1
    keys = redis.Redis.from_url(redis_server.url).keys("*")
    assert keys and all(k.startswith(b"{tenant-a}:") for k in keys)
    # 1 counter + sha, pixel, unique-id buckets + 4 band buckets + 1 sightings bucket
    assert len(keys) == 9


def test_ttl_sets_expiry_on_every_written_key(redis_server):
    reg = RedisRegistry(redis_server.url, prefix="t", ttl_s=3600)
    reg.lookup(make_fp(2), Sighting("alice", "l1"), register=True)
    client = redis.Redis.from_url(redis_server.url)
    ttls = {k: client.ttl(k) for k in client.keys("*")}
    assert all(0 < t <= 3600 for k, t in ttls.items() if not k.endswith(b":n")), ttls
