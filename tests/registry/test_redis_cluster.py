"""The sharded registry's own properties, on a real 3-node Redis Cluster and on one plain
redis-server: keys spread over every node, failures between steps, script reloads, TTL.
(The shared behaviour is in test_contract.py, which runs against it too.)"""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis
from redis.crc import key_slot

from services.metadata.registry import bands
from services.metadata.registry.base import RegistryUnavailable
from services.metadata.registry.model import MatchKind, Sighting
from services.metadata.registry.redis_cluster_backend import RedisClusterRegistry
from tests.helpers.redis_servers import start_redis
from tests.registry.conftest import key_contents, make_fp

SPREAD_IMAGES = 200  # registrations whose keys must land on every node
MAX_NODE_SHARE = 0.6  # no node may hold more than this fraction of the keys
RECOVERY_TIMEOUT_S = 10.0  # seconds for a restarted node to serve again


def test_one_registry_spreads_over_every_node(redis_cluster):
    reg = RedisClusterRegistry(redis_cluster.url, prefix="spread")
    for i in range(SPREAD_IMAGES):
        assert reg.lookup(make_fp(1000 + i, uid=f"U{i}"), Sighting(f"s{i}", f"l{i}"), register=True).available
    nodes = [redis.Redis(port=port) for port in redis_cluster.ports]
    sizes = [node.dbsize() for node in nodes]
    assert min(sizes) > 0 and max(sizes) <= MAX_NODE_SHARE * sum(sizes), sizes
    keys = [k for node in nodes for k in node.keys("*")]
    assert all(k.startswith(b"{spread:") for k in keys)
    # Every key, not a KEYS-order sample (that order varies run to run; a sample of 400 once
    # held 298 slots): per-bucket hash tags put one registry on hundreds of slots, not one.
    slots = {key_slot(k) for k in keys}
    assert len(slots) > 300, len(slots)
    reg.close()


def test_lookups_tolerate_index_entries_without_sightings(redis_server):
    """What a failover that lost one node's last writes (or expired sightings) can leave:
    an id in the band and pixel indexes with no sighting. It yields no match, no error."""
    reg = RedisClusterRegistry(redis_server.url, cluster=False)
    reg.lookup(make_fp(1, uid="CAM-1"), Sighting("alice", "a-1"), register=True)
    client = redis.Redis.from_url(redis_server.url)
    sightings = [k for k in client.keys("*") if b"}s" in k]
    assert len(sightings) == 1
    client.delete(*sightings)
    near = reg.lookup(make_fp(2, base=1, flips=3, pixels_of=1, uid="CAM-1"), Sighting("bob", "b-1"), register=False)
    assert near.available and near.matches == () and near.findings == ()


def test_redis_dying_between_steps_leaves_a_pending_image_that_the_next_registration_repairs(tmp_path):
    """Redis dies after step 1 (image id and sighting stored) and before step 2 (indexes):
    the registration answers unavailable; afterwards a near copy is not found (a missed
    match, never a false one) until the same file is registered again."""
    server = start_redis(tmp_path, appendonly=True)

    class DiesBeforeIndexes(RedisClusterRegistry):
        def _add_to_indexes(self, keys, own):
            server.process.terminate()
            server.process.wait(10)
            return super()._add_to_indexes(keys, own)

    try:
        dying = DiesBeforeIndexes(server.url, cluster=False)
        assert not dying.lookup(make_fp(10), Sighting("alice", "a-1"), register=True).available
        server.process = start_redis(tmp_path, port=server.port, appendonly=True).process
        reg = RedisClusterRegistry(server.url, cluster=False)
        near_copy = make_fp(11, base=10, flips=3)
        assert reg.lookup(near_copy, Sighting("bob", "b-1"), register=False).matches == ()
        same = reg.lookup(make_fp(10), Sighting("bob", "b-1"), register=False)
        assert [(m.kind, m.sighting.seller_id) for m in same.matches] == [(MatchKind.SAME_BYTES, "alice")]
        reg.lookup(make_fp(10), Sighting("carol", "c-1"), register=True)  # finds it pending: writes the indexes
        near = reg.lookup(near_copy, Sighting("bob", "b-1"), register=False)
        assert {(m.kind, m.sighting.seller_id) for m in near.matches} == {
            (MatchKind.NEAR_DUPLICATE, "alice"),
            (MatchKind.NEAR_DUPLICATE, "carol"),
        }
        pending = [
            v
            for k in redis.Redis(port=server.port).keys("*}x*")
            for v in redis.Redis(port=server.port).hvals(k)
            if v.startswith(b"-")
        ]
        assert pending == []  # confirmed
    finally:
        server.process.terminate()
        server.process.wait(10)


def test_scripts_are_loaded_again_when_a_node_lost_them(redis_cluster):
    """A restarted node or a promoted replica has an empty script cache."""
    reg = RedisClusterRegistry(redis_cluster.url, prefix="flush")
    reg.lookup(make_fp(20), Sighting("alice", "a-1"), register=True)
    for port in redis_cluster.ports:
        redis.Redis(port=port).script_flush()
    again = reg.lookup(make_fp(20), Sighting("bob", "b-1"), register=True)
    assert again.available and [m.sighting.seller_id for m in again.matches] == ["alice"]


def test_ttl_sets_expiry_on_every_written_key_but_the_id_counters(redis_server):
    reg = RedisClusterRegistry(redis_server.url, prefix="t", ttl_s=3600, cluster=False)
    reg.lookup(make_fp(30, uid="X"), Sighting("alice", "l1"), register=True)
    client = redis.Redis.from_url(redis_server.url)
    ttls = {k: client.ttl(k) for k in client.keys("*")}
    # shard counter, sha bucket, sightings, pixel bucket, unique-id bucket, one per band
    assert len(ttls) == 5 + bands.LAYOUT.count
    assert all(0 < t <= 3600 for k, t in ttls.items() if not k.endswith(b"}n")), ttls
    assert [t for k, t in ttls.items() if k.endswith(b"}n")] == [-1]  # ids are never reused


def test_prefix_may_not_break_the_hash_tags():
    with pytest.raises(ValueError):
        RedisClusterRegistry("redis://127.0.0.1:1/0", prefix="a}b")


def test_a_cluster_node_down_is_unavailable_then_recovers(redis_cluster):
    """Health (ping) asks every primary; a lookup while one of the three is down answers
    unavailable (its buckets are unreachable), and both recover when it is back."""
    reg = RedisClusterRegistry(redis_cluster.url, prefix="down")
    reg.ping()
    reg.lookup(make_fp(40), Sighting("alice", "a-1"), register=True)
    redis_cluster.stop_node(2)
    try:
        with pytest.raises(RegistryUnavailable):
            reg.ping()
        down = reg.lookup(make_fp(41), Sighting("bob", "b-1"), register=True)
        assert not down.available and "redis" in down.error
    finally:
        redis_cluster.start_node(2)  # same port and nodes.conf: it rejoins with its slots, empty
        redis_cluster.wait_ok(time.monotonic() + RECOVERY_TIMEOUT_S)
    reg.ping()
    back = reg.lookup(make_fp(42), Sighting("carol", "c-1"), register=True)
    assert back.available and back.registered
    reg.close()


def test_cluster_bench_loader_writes_exactly_what_registrations_write(redis_server):
    """bench_registry_cluster loads 200k fingerprints in bulk; its memory figures only hold if
    the bulk layout is byte for byte what the scripts leave after the same registrations."""
    from bench.bench_registry_cluster import load_sharded
    from bench.bench_registry_scale import bench_sighting
    from services.metadata.fingerprints import Fingerprints

    n = 300
    rng = np.random.default_rng(4)
    hashes = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    hashes[:, ::2] = rng.integers(0, 2, (n, 4))  # few values per band: buckets hold several images
    shas = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    shas[:, :2], pixels[:, :2] = rng.integers(0, 2, (n, 2)), rng.integers(0, 3, (n, 2))  # shared shards and buckets
    live = RedisClusterRegistry(redis_server.url, prefix="live", cluster=False)
    bulk = RedisClusterRegistry(redis_server.url, prefix="bulk", cluster=False)
    for i in range(n):
        fp = Fingerprints(
            sha256=shas[i].tobytes() + bytes(16),
            pixel_sha256=pixels[i].tobytes() + bytes(16),
            perceptual=hashes[i].tobytes(),
        )
        live.lookup(fp, bench_sighting(i + 1), register=True)
    load_sharded(bulk, hashes, shas, pixels)
    client = redis.Redis.from_url(redis_server.url)
    written = key_contents(client, b"{live:")
    assert len(written) > 50 and any(len(v) > 12 for k, v in written.items() if k.startswith(b"b:"))
    assert any(b"s" in k and len(v) > 1 for k, v in written.items())  # a sightings hash of several images
    assert key_contents(client, b"{bulk:") == written


def test_a_slot_moved_to_another_node_is_followed(redis_cluster):
    """Resharding or a failover moves slots: the registry's node table goes stale, the node
    answers MOVED, and the batch is resent through redis-py's cluster pipeline."""
    reg = RedisClusterRegistry(redis_cluster.url, prefix="moved")
    fp = make_fp(50)
    reg.lookup(fp, Sighting("alice", "a-1"), register=True)
    sha_key = reg.keys.sha_key(fp.sha256[:16])
    slot = redis.Redis(port=redis_cluster.ports[0]).cluster("KEYSLOT", sha_key)
    before = reg.client.get_node_from_key(sha_key).port
    assert redis_cluster.move_slot(slot) != before
    again = reg.lookup(fp, Sighting("bob", "b-1"), register=True)
    assert again.available and [m.sighting.seller_id for m in again.matches] == ["alice"]
    assert reg.client.get_node_from_key(sha_key).port != before  # the client learned the new owner
    reg.close()
