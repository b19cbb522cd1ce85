"""The sharded registry on a local 3-node Redis Cluster against the single-slot registry on
one redis-server, in one run: spread of keys and memory over the nodes, bytes per
fingerprint, and exact / near-duplicate / registration latency through the production code
(RedisClusterRegistry.lookup and RedisRegistry.lookup), with the ratio.

Both stores get the same N fingerprints (perceptual hashes with the bit frequencies of real
pHashes, as in bench_registry_scale), loaded with pipelines straight into each production
key layout: `load_sharded` writes byte for byte what N registrations through the sharded
scripts leave (tests/registry/test_redis_cluster.py checks it), `load` (from
bench_registry_scale) what the single-slot script leaves. Every process (the cluster's
three nodes, the single server, this client) shares the machine's cores, so latencies
include waiting for a CPU: the load average is printed at the start and the end.

    .venv/bin/python -m bench.bench_registry_cluster [--n 200000] [--quick]
    .venv/bin/python -m bench.bench_registry_cluster --wait   # only the cost of WAIT (below)

--wait: the cost of registry_wait_replicas (docs/registry.md, "Failover"): a plain primary
and one replica (sharded layout without cluster mode), registrations of new images with
WAIT 0 and WAIT 1 interleaved one by one (so both see the same machine load), p50/p99.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
import redis

from bench.bench_registry_scale import (
    BATCH,
    FLIPS,
    QUERIES,
    QUICK_QUERIES,
    SEED,
    _groups,
    band_columns,
    bench_sighting,
    load,
    pct,
    real_bit_frequencies,
    start_redis,
    timed,
)
from bench.redis_local import start_cluster, start_replica
from services.common.config import MetadataConfig
from services.metadata.fingerprints import Fingerprints
from services.metadata.registry.base import DIGEST_BYTES, encode_sighting
from services.metadata.registry.model import Sighting
from services.metadata.registry.redis_backend import RedisRegistry
from services.metadata.registry.redis_cluster_backend import RedisClusterRegistry
from services.metadata.registry.redis_cluster_layout import LOCAL_BITS, SHARD_BITS, SUB_BUCKETS_BITS
from services.metadata.registry.redis_common import SIGHTING_BUCKET

DEFAULT_N = 200_000  # fingerprints (the full run)
QUICK_N = 20_000  # fingerprints with --quick (well under a minute)
PREFIX = MetadataConfig.registry_prefix  # "imagetrust"
WAIT_REGISTRATIONS = 2000  # new images registered with each WAIT setting (--wait)
WAIT_TIMEOUT_MS = MetadataConfig.registry_wait_timeout_ms  # ms: the production default


def local_ids(shard: np.ndarray) -> np.ndarray:
    """The local id each row gets when rows register in order: 1 + earlier rows of its shard."""
    order = np.argsort(shard, kind="stable")
    sorted_ = shard[order]
    starts = np.r_[0, np.flatnonzero(sorted_[1:] != sorted_[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(shard)])
    local = np.empty(len(shard), np.int64)
    local[order] = np.arange(len(shard)) - np.repeat(starts, sizes) + 1
    return local


class _Writer:
    """Queues commands on a (cluster) pipeline and sends them BATCH at a time."""

    def __init__(self, client) -> None:
        self.client = client
        self.pipe = client.pipeline(transaction=False)

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def flush(self, force: bool = False) -> None:
        if force or len(self.pipe) >= BATCH:
            self.pipe.execute()
            self.pipe = self.client.pipeline(transaction=False)


def load_sharded(
    reg: RedisClusterRegistry, hashes: np.ndarray, shas: np.ndarray, pixels: np.ndarray, sightings=bench_sighting
) -> None:
    """Writes images registered in row order (each distinct, one sighting each: row i has
    bench_sighting(i + 1)) exactly as the sharded scripts would leave them."""
    keys, n = reg.keys, len(hashes)
    head = (shas[:, 0].astype(np.int64) << 8) | shas[:, 1]
    shard = head >> (16 - SHARD_BITS)
    local = local_ids(shard)
    ids = (shard << LOCAL_BITS) | local
    packed = ids.astype(">u4").view(np.uint8).reshape(n, 4)
    out = _Writer(reg.client)
    sub = head & ((1 << SUB_BUCKETS_BITS) - 1)
    for _value, rows in _groups(head):  # one sha hash per (shard, sub-bucket) = per 16-bit head
        r0 = int(rows[0])
        out.hset(
            keys.shard_head(int(shard[r0])) + b"x%x" % sub[r0],
            mapping={shas[r, 2:].tobytes(): str(local[r]) for r in rows.tolist()},
        )
        out.flush()
    for value, rows in _groups(shard):
        out.set(keys.counter(int(value)), int(local[rows].max()))
        out.flush()
    for _value, rows in _groups(shard << LOCAL_BITS | local // SIGHTING_BUCKET):
        key, _field = keys.sightings_slot(int(ids[rows[0]]))
        out.hset(
            key, mapping={str(local[r] % SIGHTING_BUCKET): encode_sighting(sightings(r + 1)) for r in rows.tolist()}
        )
        out.flush()
    pix_head = (pixels[:, 0].astype(np.int64) << 8) | pixels[:, 1]
    for _value, rows in _groups(pix_head):
        fields: dict[bytes, bytes] = {}
        for r in rows.tolist():
            fields[pixels[r, 2:].tobytes()] = fields.get(pixels[r, 2:].tobytes(), b"") + packed[r].tobytes()
        out.hset(keys.pixel_key(pixels[rows[0]].tobytes()), mapping=fields)
        out.flush()
    records = np.concatenate([packed, hashes], axis=1)
    for band, column in enumerate(band_columns(hashes, reg.layout)):
        for value, rows in _groups(column):
            out.set(keys.band_key(band, int(value)), records[rows].tobytes())
            out.flush()
    out.flush(force=True)


def _fp(sha: bytes, pixels: bytes, perceptual: bytes) -> Fingerprints:
    return Fingerprints(
        sha256=sha + bytes(32 - len(sha)), pixel_sha256=pixels + bytes(32 - len(pixels)), perceptual=perceptual
    )


def measure(reg, hashes: np.ndarray, shas: np.ndarray, pixels: np.ndarray, picks: list[int], rng_seed: int) -> dict:
    """Exact, near-duplicate and registration latency (seconds) through reg.lookup."""
    rng = np.random.default_rng(rng_seed)
    out: dict[str, list[float]] = {"exact": [], "near": [], "register": []}
    found = 0
    for i in picks:
        t = time.perf_counter()
        result = reg.lookup(_fp(shas[i].tobytes(), pixels[i].tobytes(), hashes[i].tobytes()), Sighting("q", "q"), False)
        out["exact"].append(time.perf_counter() - t)
        assert result.matches and result.matches[0].sighting.listing_id == f"l{i + 1}", result
    copies = []
    for i in picks:
        h = int.from_bytes(hashes[i].tobytes(), "big")
        for bit in rng.choice(64, FLIPS, replace=False):
            h ^= 1 << int(bit)
        copies.append(h.to_bytes(8, "big"))
        t = time.perf_counter()
        result = reg.lookup(
            _fp(hashlib.sha256(b"q%d" % i).digest(), hashlib.sha256(b"p%d" % i).digest(), copies[-1]),
            Sighting("q", "q"),
            False,
        )
        out["near"].append(time.perf_counter() - t)
        found += any(m.sighting.listing_id == f"l{i + 1}" for m in result.matches)
    for k, copy in enumerate(copies[: len(copies) // 2]):
        t = time.perf_counter()
        reg.lookup(
            _fp(hashlib.sha256(b"new%d" % k).digest(), hashlib.sha256(b"newp%d" % k).digest(), copy),
            Sighting(f"new-seller-{k}", f"new-{k}", "", "market"),
            True,
        )
        out["register"].append(time.perf_counter() - t)
    return {**out, "found": found}


def bench_wait(workdir: str, n: int = WAIT_REGISTRATIONS) -> int:
    """Registration latency of new images with WAIT 0 and WAIT 1 on a primary + replica."""
    proc, port = start_redis(workdir)
    replica, _ = start_replica(port, pathlib.Path(workdir) / "replica")
    try:
        url = f"redis://127.0.0.1:{port}/0"
        regs = {
            w: RedisClusterRegistry(
                url, prefix=f"w{w}", cluster=False, wait_replicas=w, wait_timeout_ms=WAIT_TIMEOUT_MS
            )
            for w in (0, 1)
        }
        rng = np.random.default_rng(SEED)
        times: dict[int, list[float]] = {0: [], 1: []}
        refused = {0: 0, 1: 0}
        for i in range(n):
            for w, reg in regs.items():
                fp = _fp(
                    hashlib.sha256(b"w%d-%d" % (w, i)).digest(),
                    hashlib.sha256(b"wp%d-%d" % (w, i)).digest(),
                    rng.integers(0, 256, 8, dtype=np.uint8).tobytes(),
                )
                t = time.perf_counter()
                result = reg.lookup(fp, Sighting(f"s{i}", f"l{i}"), True)
                times[w].append(time.perf_counter() - t)
                refused[w] += not result.available
        print(
            f"register a new image, {n} each, primary + 1 replica on this machine (WAIT timeout {WAIT_TIMEOUT_MS} ms):"
        )
        for w in (0, 1):
            print(f"  registry_wait_replicas={w}: {timed(times[w])}, unavailable {refused[w]}")
        print(
            f"  WAIT 1 - WAIT 0: p50 {pct(times[1], 50) - pct(times[0], 50):+.3f} ms, "
            f"p99 {pct(times[1], 99) - pct(times[0], 99):+.3f} ms"
        )
        for reg in regs.values():
            reg.close()
    finally:
        for p in (replica, proc):
            p.terminate()
            p.wait(10)
    return 0


def _used(client: redis.Redis) -> int:
    return client.info("memory")["used_memory"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="fingerprints to load into each store")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_N:,} fingerprints, {QUICK_QUERIES} queries")
    parser.add_argument("--wait", action="store_true", help="only the cost of WAIT 1 vs 0 on a primary + replica")
    args = parser.parse_args(argv)
    if args.wait:
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        with tempfile.TemporaryDirectory() as workdir:
            return bench_wait(workdir)
    n = QUICK_N if args.quick else args.n
    queries = QUICK_QUERIES if args.quick else QUERIES
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; N = {n:,}; 3-node local "
        f"cluster (no replicas) vs one redis-server, all on this machine"
    )
    rng = np.random.default_rng(SEED)
    freq, photos = real_bit_frequencies(args.quick)
    hashes = (
        np.packbits(rng.random((n, 64)) < freq, axis=1)
        if freq is not None
        else rng.integers(0, 256, size=(n, 8), dtype=np.uint8)
    )
    shas = rng.integers(0, 256, size=(n, DIGEST_BYTES), dtype=np.uint8)
    pixels = rng.integers(0, 256, size=(n, DIGEST_BYTES), dtype=np.uint8)
    picks = rng.integers(0, n, size=queries).tolist()
    print(f"perceptual hashes: bit frequencies of {photos} real pHashes" if freq is not None else "uniform hashes")
    with tempfile.TemporaryDirectory() as workdir:
        cluster = start_cluster(pathlib.Path(workdir) / "cluster")
        proc, port = start_redis(workdir)
        try:
            return _run(cluster, port, n, hashes, shas, pixels, picks)
        finally:
            cluster.stop()
            proc.terminate()
            proc.wait(10)


def _run(cluster, port: int, n: int, hashes, shas, pixels, picks: list[int]) -> int:
    nodes = [redis.Redis(port=p) for p in cluster.ports]
    single = redis.Redis(port=port)
    # The production default prefix: key names, and so memory, as deployed.
    sharded = RedisClusterRegistry(cluster.url, prefix=PREFIX)
    slot = RedisRegistry(f"redis://127.0.0.1:{port}/0", prefix=PREFIX)
    before = [_used(c) for c in nodes] + [_used(single)]
    t0 = time.perf_counter()
    load_sharded(sharded, hashes, shas, pixels)
    t1 = time.perf_counter()
    load(slot, single, hashes, shas, pixels)
    t2 = time.perf_counter()
    used = [_used(c) - b for c, b in zip(nodes + [single], before)]
    keys = [c.dbsize() for c in nodes + [single]]
    print(f"loaded {n:,} fingerprints: cluster {t1 - t0:.1f} s, single server {t2 - t1:.1f} s")
    for i, p in enumerate(cluster.ports):
        print(
            f"  cluster node {i} (:{p}): {keys[i]:,} keys ({keys[i] / sum(keys[:3]):.1%}), used_memory "
            f"{used[i] / 2**20:.1f} MiB ({used[i] / sum(used[:3]):.1%})"
        )
    print(
        f"memory per fingerprint: cluster {sum(used[:3]) / n:.0f} B ({sum(keys[:3]):,} keys), single-slot "
        f"{used[3] / n:.0f} B ({keys[3]:,} keys): ratio {sum(used[:3]) / used[3]:.2f}"
    )
    results = {
        "sharded cluster": measure(sharded, hashes, shas, pixels, picks, SEED),
        "single slot": measure(slot, hashes, shas, pixels, picks, SEED),
    }
    for name, r in results.items():
        print(
            f"{name:16s} exact (same bytes) {timed(r['exact'])} | near-duplicate {timed(r['near'])} (found "
            f"{r['found']}/{len(picks)}) | register near copy {timed(r['register'])}"
        )
    a, b = results["sharded cluster"], results["single slot"]
    print(
        "ratio cluster / single slot, p50 (p99): "
        + ", ".join(
            f"{kind} {pct(a[kind], 50) / pct(b[kind], 50):.2f}x ({pct(a[kind], 99) / pct(b[kind], 99):.2f}x)"
            for kind in ("exact", "near", "register")
        )
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    sharded.close()
    slot.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
