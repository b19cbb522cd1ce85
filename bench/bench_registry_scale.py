"""The Redis registry at scale: memory per fingerprint, exact and near-duplicate lookup
latency, and the banded index against a linear scan, side by side in one run.

Starts its own redis-server (default settings, no persistence) on a free port, loads N
synthetic fingerprints (uniform random pHash-64, random SHA-256s, one sighting each with
short realistic ids) straight into the production key layout with pipelines, then times:
- exact lookup: the same-bytes index read (HGET of the sha bucket), the primitive of a
  SAME_BYTES match;
- near-duplicate search: RedisRegistry.lookup(register=False) of a stored image with 4
  bits of its hash flipped (script + candidate verification + sightings), the whole path;
- linear scan: numpy popcount of the query against all N hashes already in client memory,
  and the same after reading all hashes out of Redis (what a scan of the store costs).

    .venv/bin/python -m bench.bench_registry_scale [--n 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import redis

from services.metadata.fingerprints import Fingerprints
from services.metadata.registry import bands
from services.metadata.registry.base import DIGEST_BYTES, encode_sighting
from services.metadata.registry.model import Sighting
from services.metadata.registry.redis_backend import SIGHTING_BUCKET, RedisRegistry

BATCH = 2000  # fingerprints per pipeline
QUERIES = 2000  # timed lookups per kind
FLIPS = 4  # bits flipped in near-duplicate queries
SEED = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir: str) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is required: apt-get install redis-server")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


def load(reg: RedisRegistry, client: redis.Redis, hashes: np.ndarray, shas: np.ndarray, pixels: np.ndarray) -> None:
    """Writes N distinct images in the exact layout the Lua script writes (ids 1..N)."""
    p = reg.prefix
    n = len(hashes)
    for start in range(0, n, BATCH):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + BATCH, n)):
            image_id = i + 1
            packed = struct.pack(">I", image_id)
            h = hashes[i].tobytes()
            sha, pix = shas[i].tobytes(), pixels[i].tobytes()
            pipe.hset(p + b"xs" + sha[:2], sha[2:], image_id)
            pipe.hset(p + b"xp" + pix[:2], pix[2:], packed)
            for band, value in enumerate(bands.split(h, reg.layout)):
                pipe.append(reg._band_key(band, value), packed + h)
            s = Sighting(f"s{image_id % 500000}", f"l{image_id}", "", "market", 1_700_000_000 + image_id)
            pipe.hset(p + b"s" + struct.pack(">I", image_id // SIGHTING_BUCKET), str(image_id % SIGHTING_BUCKET),
                      encode_sighting(s))
        pipe.execute()
    client.set(p + b"n", n)


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1000, q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="fingerprints to load")
    parser.add_argument("--quick", action="store_true", help="50,000 fingerprints, 500 queries")
    args = parser.parse_args(argv)
    n = 50_000 if args.quick else args.n
    queries = 500 if args.quick else QUERIES
    rng = np.random.default_rng(SEED)
    hashes = rng.integers(0, 256, size=(n, 8), dtype=np.uint8)
    shas = rng.integers(0, 256, size=(n, DIGEST_BYTES), dtype=np.uint8)
    pixels = rng.integers(0, 256, size=(n, DIGEST_BYTES), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as workdir:
        proc, port = start_redis(workdir)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            client = redis.Redis(port=port)
            reg = RedisRegistry(url, prefix="bench")
            before = client.info("memory")["used_memory"]
            t0 = time.perf_counter()
            load(reg, client, hashes, shas, pixels)
            load_s = time.perf_counter() - t0
            after = client.info("memory")["used_memory"]
            keys = client.dbsize()
            print(f"loaded {n:,} fingerprints in {load_s:.1f} s ({n / load_s:,.0f}/s), {keys:,} keys; "
                  f"Redis memory {(after - before) / n:.0f} bytes per fingerprint "
                  f"(used_memory delta {(after - before) / 2**20:.1f} MiB)")

            picks = rng.integers(0, n, size=queries)
            exact = []
            for i in picks:
                sha = shas[i].tobytes()
                t = time.perf_counter()
                got = client.hget(reg.prefix + b"xs" + sha[:2], sha[2:])
                exact.append(time.perf_counter() - t)
                assert int(got) == i + 1
            near, found = [], 0
            for i in picks:
                h = int.from_bytes(hashes[i].tobytes(), "big")
                for bit in rng.choice(64, FLIPS, replace=False):
                    h ^= 1 << int(bit)
                fp = Fingerprints(sha256=hashlib.sha256(b"q%d" % i).digest(), pixel_sha256=hashlib.sha256(b"p%d" % i).digest(),
                                  perceptual=h.to_bytes(8, "big"))
                t = time.perf_counter()
                result = reg.lookup(fp, Sighting("query", "q"), register=False)
                near.append(time.perf_counter() - t)
                found += any(m.sighting.listing_id == f"l{i + 1}" for m in result.matches)
            as_u64 = hashes.copy().view(">u8").ravel().astype(np.uint64)
            scan = []
            for i in picks[: min(200, queries)]:
                q = np.uint64(as_u64[i] ^ np.uint64(0b1111))
                t = time.perf_counter()
                hits = np.flatnonzero(np.bitwise_count(as_u64 ^ q) <= bands.THRESHOLD)
                scan.append(time.perf_counter() - t)
                assert i in hits
            t = time.perf_counter()
            blob = b"".join(v for v in client.mget([reg._band_key(0, v) for v in range(1 << reg.layout.width)]) if v)
            stored = np.frombuffer(blob, np.uint8).reshape(-1, 12)[:, 4:].copy().view(">u8").ravel().astype(np.uint64)
            np.flatnonzero(np.bitwise_count(stored ^ as_u64[picks[0]]) <= bands.THRESHOLD)
            store_scan = time.perf_counter() - t
            print(f"exact lookup (HGET sha bucket):     p50 {pct(exact, 50):.3f} ms  p99 {pct(exact, 99):.3f} ms")
            print(f"near-duplicate lookup (full path):  p50 {pct(near, 50):.3f} ms  p99 {pct(near, 99):.3f} ms  "
                  f"(found {found}/{queries} copies at {FLIPS} flipped bits)")
            print(f"linear scan, numpy popcount in RAM: p50 {pct(scan, 50):.3f} ms  p99 {pct(scan, 99):.3f} ms")
            print(f"linear scan reading Redis + numpy:  {store_scan * 1000:.1f} ms")
            print(f"speed-up of the index (p50): {pct(scan, 50) / pct(near, 50):.1f}x over the in-RAM numpy scan, "
                  f"{store_scan * 1000 / pct(near, 50):.0f}x over scanning the store")
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
