"""Redis-only properties: the key schema (one hash tag per prefix), prefixes, TTL on keys."""

from __future__ import annotations

import redis

from services.metadata.registry import bands
from services.metadata.registry.model import Sighting
from services.metadata.registry.redis_backend import RedisRegistry
from tests.registry.conftest import key_contents, make_fp


def test_every_key_carries_the_prefix_hash_tag_and_prefixes_are_isolated(redis_server):
    a = RedisRegistry(redis_server.url, prefix="tenant-a")
    b = RedisRegistry(redis_server.url, prefix="tenant-b")
    a.lookup(make_fp(1, uid="X"), Sighting("alice", "l1"), register=True)
    assert b.lookup(make_fp(1, uid="X"), Sighting("bob", "l2"), register=False).matches == ()
    assert len(a.lookup(make_fp(1, uid="X"), Sighting("bob", "l2"), register=False).matches) == 1
    keys = redis.Redis.from_url(redis_server.url).keys("*")
    assert keys and all(k.startswith(b"{tenant-a}:") for k in keys)
    # 1 counter + sha, pixel, unique-id buckets + one bucket per band + 1 sightings bucket
    assert len(keys) == 5 + bands.LAYOUT.count


def test_ttl_sets_expiry_on_every_written_key(redis_server):
    reg = RedisRegistry(redis_server.url, prefix="t", ttl_s=3600)
    reg.lookup(make_fp(2), Sighting("alice", "l1"), register=True)
    client = redis.Redis.from_url(redis_server.url)
    ttls = {k: client.ttl(k) for k in client.keys("*")}
    assert all(0 < t <= 3600 for k, t in ttls.items() if not k.endswith(b":n")), ttls


def test_scale_bench_loader_writes_exactly_what_registrations_write(redis_server):
    """bench_registry_scale loads 1M fingerprints in bulk; its memory figures only hold if the
    bulk layout is byte for byte what the Lua script leaves after the same registrations."""
    import numpy as np

    from bench.bench_registry_scale import bench_sighting, load
    from services.metadata.fingerprints import Fingerprints

    n = 300
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    hashes[:, ::2] = rng.integers(0, 2, (n, 4))  # 256 values per band: buckets hold several images
    shas = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    shas[:, :2], pixels[:, :2] = rng.integers(0, 3, (n, 2)), rng.integers(0, 3, (n, 2))  # shared index buckets
    live, bulk = RedisRegistry(redis_server.url, prefix="live"), RedisRegistry(redis_server.url, prefix="bulk")
    for i in range(n):
        fp = Fingerprints(
            sha256=shas[i].tobytes() + bytes(16),
            pixel_sha256=pixels[i].tobytes() + bytes(16),
            perceptual=hashes[i].tobytes(),
        )
        live.lookup(fp, bench_sighting(i + 1), register=True)
    client = redis.Redis.from_url(redis_server.url)
    load(bulk, client, hashes, shas, pixels)

    written = key_contents(client, b"{live}:")
    assert len(written) > 100 and any(len(v) > 12 for k, v in written.items() if k.startswith(b"b"))
    assert key_contents(client, b"{bulk}:") == written


def test_scale_bench_loader_writes_views_and_records_exactly_as_registrations(redis_server):
    """The same check for images with content keys: every registered view in its namespace
    (the four corner windows share one, two bands each) and a verification record each (the
    layout the 1M memory figure is measured on)."""
    import numpy as np

    from bench.bench_registry_scale import VIEW_NAMESPACES, bench_sighting, load, synthetic_records
    from services.metadata.fingerprints import Fingerprints
    from services.metadata.reuse.content import ContentKeys

    n = 130  # > 2 record strings (59 version 2 records each)
    rng = np.random.default_rng(4)
    nv = len(VIEW_NAMESPACES)
    views = rng.integers(0, 256, (n, nv, 8), dtype=np.uint8)
    views[:, :, ::2] = rng.integers(0, 2, (n, nv, 4))  # shared band buckets
    views[::7, 4] = views[::7, 3]  # two corner views of one image in the same buckets
    shas = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    records = synthetic_records(rng, n)
    live, bulk = RedisRegistry(redis_server.url, prefix="live"), RedisRegistry(redis_server.url, prefix="bulk")
    for i in range(n):
        hashes = tuple(views[i, v].tobytes() for v in range(nv))
        content = ContentKeys(
            tuple(zip(VIEW_NAMESPACES, hashes)), ((hashes[0], (0, 1)),), records[i].tobytes(), "", None
        )
        fp = Fingerprints(
            sha256=shas[i].tobytes() + bytes(16),
            pixel_sha256=pixels[i].tobytes() + bytes(16),
            perceptual=hashes[0],
            content=content,
        )
        live.lookup(fp, bench_sighting(i + 1), register=True)
    client = redis.Redis.from_url(redis_server.url)
    load(bulk, client, np.ascontiguousarray(views[:, 0]), shas, pixels, views=views, records=records)
    written = key_contents(client, b"{live}:")
    assert any(k.startswith(b"e") for k in written) and any(
        k.startswith(b"b\x08") for k in written
    )  # version 2 records
    assert any(k.startswith(b"b\x0d") for k in written) and not any(k.startswith(b"b\x0e") for k in written)
    assert key_contents(client, b"{bulk}:") == written
