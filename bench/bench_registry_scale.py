"""The Redis registry at scale: memory per fingerprint, exact and near-duplicate lookup
latency, and the banded index against linear scans, side by side in one run.

Starts its own redis-server (default settings, no persistence) on a free port and loads N
fingerprints straight into the production key layout with pipelines (`load` writes
exactly what the Lua script would after N registrations: tests/registry/test_redis_keys.py
checks that), then times, through the production code:
- exact lookup: the same-bytes index read alone (HGET of the sha bucket), and
  RedisRegistry.lookup(register=False) of a stored image's bytes (the whole path);
- near-duplicate search: RedisRegistry.lookup(register=False) of a stored image with
  FLIPS bits of its hash flipped (script + candidate verification + sightings);
- registration: RedisRegistry.lookup(register=True) of new near copies;
- linear scans: (a) reading every stored hash out of Redis and checking it with numpy
  (what the service would do without the index), (b) numpy popcount over all N hashes
  already in this process' RAM.

Perceptual hashes: pHash bits are not uniform (the DC-adjacent coefficients are biased),
which fills some band buckets more than others. The loaded hashes draw each bit with the
frequency it has in real pHashes (BSDS500 and exif-samples photos, when present under
../shared/datasets); bucket occupancy is reported for those and for uniform random hashes.

    .venv/bin/python -m bench.bench_registry_scale [--n 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

import numpy as np
import redis

from bench.redis_local import free_port
from services.metadata import fingerprints as fp
from services.metadata.fingerprints import Fingerprints
from services.metadata.registry import bands
from services.metadata.registry.base import DIGEST_BYTES, Keys, encode_sighting
from services.metadata.registry.model import Sighting
from services.metadata.registry.redis_backend import SIGHTING_BUCKET, RedisRegistry
from services.metadata.registry.redis_common import RECORD_KEYS
from services.metadata.reuse import descriptor
from services.metadata.reuse import views as views_mod

DATASETS = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
BATCH = 2000  # commands per pipeline while loading
QUERIES = 1000  # timed lookups per kind (full run)
QUICK_QUERIES = 300  # timed lookups per kind (--quick)
SCAN_REPEATS = 3  # full reads of the store for the linear-scan baseline (a)
FLIPS = 4  # bits flipped in near-duplicate queries (typical of a re-encoded copy)
MEMORY_SAMPLES = 300  # keys per structure sampled with MEMORY USAGE
VIEW_NAMESPACES = tuple(ns for ns, _box in views_mod.REGISTERED_VIEWS)  # namespace of each registered view
SEED = 6  # numpy seed of the synthetic hashes, digests and queries (the same data every run)
T0 = 1_700_000_000  # seconds since the epoch: the synthetic sightings' times


def start_redis(workdir: str) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is required: apt-get install redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


def bench_sighting(image_id: int) -> Sighting:
    """Short realistic ids: ~500k sellers, one listing per image."""
    return Sighting(f"s{image_id % 500_000}", f"l{image_id}", "", "market", float(T0 + image_id))


def band_columns(hashes: np.ndarray, layout: bands.Layout) -> np.ndarray:
    """bands.split for every row at once: (bands, N) int64."""
    values = np.ascontiguousarray(hashes).view(">u8").ravel().astype(np.uint64)
    mask = np.uint64((1 << layout.width) - 1)
    return np.array(
        [
            ((values >> np.uint64(64 - layout.skip - (b + 1) * layout.width)) & mask).astype(np.int64)
            for b in range(layout.count)
        ]
    )


def namespace_records(views: np.ndarray, packed_ids: np.ndarray, namespaces: tuple[int, ...]):
    """Per namespace: (namespace, its view hashes, their band records), the views of one
    image next to each other in view order, as a registration appends them to a bucket."""
    for ns in sorted(set(namespaces[: views.shape[1]])):
        cols = [v for v in range(views.shape[1]) if namespaces[v] == ns]
        view = np.ascontiguousarray(views[:, cols].reshape(-1, views.shape[2]))
        ids = np.repeat(packed_ids, len(cols), axis=0)
        yield ns, view, np.concatenate([ids, view], axis=1)


def _groups(bucket: np.ndarray):
    """(bucket value, row indices in id order) for every distinct value."""
    order = np.argsort(bucket, kind="stable")
    sorted_ = bucket[order]
    cuts = np.flatnonzero(sorted_[1:] != sorted_[:-1]) + 1
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(order)]):
        yield sorted_[a], order[a:b]


def load(
    reg: RedisRegistry,
    client: redis.Redis,
    hashes: np.ndarray,
    shas: np.ndarray,
    pixels: np.ndarray,
    sightings=bench_sighting,
    views: np.ndarray | None = None,
    records: np.ndarray | None = None,
    namespaces: tuple[int, ...] = VIEW_NAMESPACES,
) -> None:
    """Writes images 1..N (rows of hashes/shas/pixels, each distinct, one sighting each)
    exactly as N registrations through the Lua script would leave them, bucket by bucket.
    views: (N, V, 8) view hashes, view v in namespace namespaces[v] (views[:, 0] is the whole
    frame, = hashes); records: (N, RECORD_BYTES) verification records. Without them, what
    fingerprints without content keys leave (the whole frame only, no record)."""
    p, n = reg.prefix, len(hashes)
    pipe = client.pipeline(transaction=False)

    def flush(force: bool = False) -> None:
        nonlocal pipe
        if force or len(pipe) >= BATCH:
            pipe.execute()
            pipe = client.pipeline(transaction=False)

    ids = np.arange(1, n + 1, dtype=np.uint32)
    packed_ids = ids.astype(">u4").view(np.uint8).reshape(n, 4)
    for family, digests, values in (
        (b"xs", shas, [str(i).encode() for i in ids.tolist()]),
        (b"xp", pixels, [r.tobytes() for r in packed_ids]),
    ):
        head = (digests[:, 0].astype(np.int64) << 8) | digests[:, 1]
        for value, rows in _groups(head):
            pipe.hset(
                p + family + struct.pack(">H", value),
                mapping={digests[r, 2:].tobytes(): values[r] for r in rows.tolist()},
            )
            flush()
    buckets = {}  # MSET in chunks: one reply per chunk instead of per bucket
    every_view = views if views is not None else hashes[:, None, :]
    for ns, view, band_records in namespace_records(every_view, packed_ids, namespaces):
        for band, column in enumerate(band_columns(view, reg.layout)[: views_mod.bands_of(ns, reg.layout.count)]):
            for value, rows in _groups(column):
                buckets[reg._band_key(ns * reg.layout.count + band, int(value))] = band_records[rows].tobytes()
                if len(buckets) >= BATCH:
                    pipe.mset(buckets)
                    buckets = {}
                    flush()
    if records is not None:  # strings of the records' version, id 0's slot zero-filled
        per_key = RECORD_KEYS[records.shape[1]][1]
        padded = np.concatenate([np.zeros((1, records.shape[1]), np.uint8), records])
        for start in range(0, len(padded), per_key):
            buckets[reg._descriptor_key(start, records.shape[1])] = padded[start : start + per_key].tobytes()
            if len(buckets) >= BATCH // 8:
                pipe.mset(buckets)
                buckets = {}
                flush()
    if buckets:
        pipe.mset(buckets)
    for bucket in range(int(ids[-1]) // SIGHTING_BUCKET + 1):
        first, last = max(1, bucket * SIGHTING_BUCKET), min(n, (bucket + 1) * SIGHTING_BUCKET - 1)
        pipe.hset(
            p + b"s" + struct.pack(">I", bucket),
            mapping={str(i % SIGHTING_BUCKET): encode_sighting(sightings(i)) for i in range(first, last + 1)},
        )
        flush()
    pipe.set(p + b"n", n)
    flush(force=True)


def real_bit_frequencies(quick: bool) -> tuple[np.ndarray | None, int]:
    """P(bit = 1) per pHash bit over the real photos in ../shared/datasets (None if absent)."""
    paths = sorted((DATASETS / "bsds500").glob("*/images/*.jpg")) + sorted((DATASETS / "exif-samples").rglob("*.jpg"))
    paths = paths[::5] if quick else paths
    found = []
    for path in paths:
        try:
            rgb = fp.display_pixels(path.read_bytes(), 120_000_000)
        except Exception:  # noqa: BLE001 - the exif-samples set contains deliberately broken files
            continue
        found.append(np.unpackbits(np.frombuffer(fp.phash64(rgb), np.uint8)))
    if not found:
        return None, 0
    return np.mean(found, axis=0), len(found)


def occupancy(hashes: np.ndarray, layout: bands.Layout, queries: np.ndarray) -> str:
    """Bucket fill and candidates per search (what one search reads) for these hashes."""
    columns = band_columns(hashes, layout)
    counts = [np.bincount(c, minlength=1 << layout.width) for c in columns]
    masks = np.array(bands._flip_masks(layout.width, layout.radius))
    per_query = [sum(int(counts[b][(columns[b][q] ^ masks)].sum()) for b in range(layout.count)) for q in queries]
    fill = np.concatenate(counts)
    return (
        f"bucket entries mean {fill.mean():.1f} max {fill.max()}; candidates per search "
        f"p50 {np.percentile(per_query, 50):.0f} p99 {np.percentile(per_query, 99):.0f}"
    )


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1000, q))


def timed(samples: list[float]) -> str:
    return f"p50 {pct(samples, 50):.3f} ms  p99 {pct(samples, 99):.3f} ms"


def memory_by_structure(
    client: redis.Redis,
    reg: RedisRegistry,
    rng: np.random.Generator,
    views: np.ndarray,
    shas: np.ndarray,
    pixels: np.ndarray,
) -> str:
    """Mean MEMORY USAGE of sampled keys of each structure x its key count / N."""
    p, n = reg.prefix, len(views)
    per_key = RECORD_KEYS[descriptor.RECORD_BYTES][1]  # the loader writes records of the current version
    picks = rng.integers(0, n, size=MEMORY_SAMPLES).tolist()
    ids = np.arange(1, n + 1, dtype=np.uint32).astype(">u4").view(np.uint8).reshape(n, 4)
    columns, band_ids = [], []
    for ns, view, _records in namespace_records(views, ids, VIEW_NAMESPACES):
        per_image = len(view) // n  # views of each image in this namespace
        for b, c in enumerate(band_columns(view, reg.layout)[: views_mod.bands_of(ns, reg.layout.count)]):
            columns.append(c[::per_image])  # one view's values: a sample of the namespace's buckets
            band_ids.append(ns * reg.layout.count + b)
    bucket_keys = sum(
        len(np.unique(c))
        for ns, view, _r in namespace_records(views, ids, VIEW_NAMESPACES)
        for c in band_columns(view, reg.layout)[: views_mod.bands_of(ns, reg.layout.count)]
    )
    families = {  # name: (number of keys, sampled key names)
        "sha index": (len(np.unique(shas[:, :2], axis=0)), [p + b"xs" + shas[i, :2].tobytes() for i in picks]),
        "pixel index": (len(np.unique(pixels[:, :2], axis=0)), [p + b"xp" + pixels[i, :2].tobytes() for i in picks]),
        f"band buckets ({views.shape[1]} views)": (
            bucket_keys,
            [reg._band_key(band_ids[k % len(columns)], int(columns[k % len(columns)][i])) for k, i in enumerate(picks)],
        ),
        "sightings": (
            n // SIGHTING_BUCKET + 1,
            [p + b"s" + struct.pack(">I", (i + 1) // SIGHTING_BUCKET) for i in picks],
        ),
        "verification records": (
            n // per_key + 1,
            [reg._descriptor_key(i + 1) for i in picks if (i + 1) // per_key < n // per_key],
        ),  # full strings only
    }
    parts = []
    for name, (keys, sample) in families.items():
        usage = [client.memory_usage(k, samples=0) for k in sample]
        parts.append(f"{name} {np.mean(usage) * keys / n:.0f}")
    return "MEMORY USAGE samples, bytes per fingerprint: " + ", ".join(parts)


def synthetic_records(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, RECORD_BYTES) records of STORED_KEYPOINTS random keypoints (version, count, a 4:3 frame)."""
    out = rng.integers(0, 256, size=(n, descriptor.RECORD_BYTES), dtype=np.uint8)
    out[:, : descriptor.HEADER_BYTES] = (descriptor.RECORD_VERSION, descriptor.STORED_KEYPOINTS, 255, 191)
    return out


def real_photo_lookups(reg: RedisRegistry, quick: bool) -> None:
    """Registers real photos on top of the loaded store, then times the production lookup
    (the Lua step, fetching the candidates' records, verification, sightings) of real
    theft copies of them and of distinct real photos; fingerprinting is not timed."""
    from bench import reuse_thefts
    from bench.bench_reuse_accuracy import jpeg
    from bench.bench_reuse_accuracy import load as load_image

    photos = sorted((DATASETS / "bsds500").glob("*/images/*.jpg"))[:: 3 if quick else 1]
    registered, others = photos[0::2], photos[1::2]
    rnd = random.Random(SEED)
    for k, path in enumerate(registered):
        reg.lookup(
            fp.compute(jpeg(load_image(path)), 120_000_000),
            Sighting(f"owner-{k}", f"o{k}", "", "market"),
            register=True,
        )
    times, found, candidates = defaultdict(list), Counter(), []
    for k, path in enumerate(registered):
        original = load_image(path)
        for name in ("scale_reencode", "crop", "mirror", "border", "overlay"):
            query = fp.compute(jpeg(reuse_thefts.EVALUATION[name](original, rnd), 80), 120_000_000)
            t = time.perf_counter()
            result = reg.lookup(query, Sighting("thief", f"t{k}", "", "market"), register=False)
            times[name].append(time.perf_counter() - t)
            found[name] += any(
                f.code == "REUSED_BY_OTHER_SELLER" and f.evidence["prior_seller_id"] == f"owner-{k}"
                for f in result.findings
            )
    false = 0
    for path in others:
        query = fp.compute(jpeg(load_image(path)), 120_000_000)
        keys = Keys.of(query, reg.layout, register=False)
        t = time.perf_counter()
        result = reg.lookup(query, Sighting("honest", "h", "", "market"), register=False)
        times["distinct photo"].append(time.perf_counter() - t)
        raw = reg._register_and_lookup(keys, Sighting("honest", "h", "", "market"), False, time.time())
        candidates.append(len(raw.candidate_ids))
        false += any(f.code == "REUSED_BY_OTHER_SELLER" for f in result.findings)
    every = [x for v in times.values() for x in v]
    print(
        f"real photos: {len(registered)} registered on top; lookups with verification (index rows read per "
        f"lookup p50 {np.percentile(candidates, 50):.0f} p99 {np.percentile(candidates, 99):.0f}):"
    )
    for name, samples in times.items():
        extra = (
            f"found {found[name]}/{len(samples)}"
            if name in found
            else f"false REUSED_BY_OTHER_SELLER {false}/{len(samples)}"
        )
        print(f"  {name:16s} {timed(samples)}  {extra}")
    print(f"  all real lookups {timed(every)}  (target p99 <= 10 ms)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="fingerprints to load")
    parser.add_argument("--quick", action="store_true", help="50,000 fingerprints, 300 queries (well under a minute)")
    parser.add_argument(
        "--layout",
        default="",
        help="another band layout to measure, COUNTxWIDTHrRADIUSsSKIP (e.g. 4x15r1s1); default bands.LAYOUT",
    )
    args = parser.parse_args(argv)
    n = 50_000 if args.quick else args.n
    queries = QUICK_QUERIES if args.quick else QUERIES
    layout = bands.LAYOUT
    if args.layout:
        count, rest = args.layout.split("x")
        width, rest = rest.split("r")
        radius, skip = rest.split("s")
        layout = bands.Layout(int(count), int(width), int(radius), int(skip))
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; layout {layout.count} bands x "
        f"{layout.width} bits, probe radius {layout.radius} ({layout.probes} probed buckets), threshold "
        f"{bands.THRESHOLD}; N = {n:,}"
    )
    rng = np.random.default_rng(SEED)
    freq, photos = real_bit_frequencies(args.quick)
    uniform = rng.integers(0, 256, size=(n, 8), dtype=np.uint8)
    if freq is None:
        print("no photos under ../shared/datasets: loading uniform random hashes")
        hashes = uniform
    else:
        print(f"pHash bit frequencies from {photos} real photos: min {freq.min():.2f} max {freq.max():.2f}")
        hashes = np.packbits(rng.random((n, 64)) < freq, axis=1)
    shas = rng.integers(0, 256, size=(n, DIGEST_BYTES), dtype=np.uint8)
    pixels = rng.integers(0, 256, size=(n, DIGEST_BYTES), dtype=np.uint8)
    # The other views (centre, middle band) and the verification records of every image:
    # view hashes with the same bit frequencies, records of random keypoints (what matters
    # here is their size and that a lookup fetches and checks them).
    others = [
        np.packbits(rng.random((n, 64)) < freq, axis=1)
        if freq is not None
        else rng.integers(0, 256, size=(n, 8), dtype=np.uint8)
        for _ in range(len(views_mod.REGISTERED_VIEWS) - 1)
    ]
    views = np.stack([hashes, *others], axis=1)
    records = synthetic_records(rng, n)
    picks = rng.integers(0, n, size=queries)
    print(f"uniform hashes:   {occupancy(uniform, layout, picks)}")
    if freq is not None:
        print(f"real-bit hashes:  {occupancy(hashes, layout, picks)}  <- loaded")
    with tempfile.TemporaryDirectory() as workdir:
        proc, port = start_redis(workdir)
        try:
            client = redis.Redis(port=port)
            reg = RedisRegistry(f"redis://127.0.0.1:{port}/0", prefix="bench", layout=layout)
            before = client.info("memory")["used_memory"]
            t0 = time.perf_counter()
            load(reg, client, hashes, shas, pixels, views=views, records=records)
            load_s = time.perf_counter() - t0
            used = client.info("memory")["used_memory"] - before
            print(
                f"loaded {n:,} fingerprints ({views.shape[1]} views, {records.shape[1]} B record each) in "
                f"{load_s:.1f} s, {client.dbsize():,} keys; Redis used_memory "
                f"{used / 2**20:.1f} MiB = {used / n:.0f} bytes per image"
            )
            print(memory_by_structure(client, reg, rng, views, shas, pixels))
            real_photo_lookups(reg, args.quick)

            exact_hget, exact_full = [], []
            for i in picks.tolist():
                sha = shas[i].tobytes()
                t = time.perf_counter()
                got = client.hget(reg.prefix + b"xs" + sha[:2], sha[2:])
                exact_hget.append(time.perf_counter() - t)
                assert int(got) == i + 1
            for i in picks.tolist():
                stored = Fingerprints(
                    sha256=shas[i].tobytes() + bytes(16),
                    pixel_sha256=pixels[i].tobytes() + bytes(16),
                    perceptual=hashes[i].tobytes(),
                )
                t = time.perf_counter()
                result = reg.lookup(stored, Sighting("query", "q"), register=False)
                exact_full.append(time.perf_counter() - t)
                assert result.matches[0].sighting.listing_id == f"l{i + 1}"
            near, found, copies = [], 0, []
            for i in picks.tolist():
                h = int.from_bytes(hashes[i].tobytes(), "big")
                for bit in rng.choice(64, FLIPS, replace=False):
                    h ^= 1 << int(bit)
                copies.append(h)
                query = Fingerprints(
                    sha256=hashlib.sha256(b"q%d" % i).digest(),
                    pixel_sha256=hashlib.sha256(b"p%d" % i).digest(),
                    perceptual=h.to_bytes(8, "big"),
                )
                t = time.perf_counter()
                result = reg.lookup(query, Sighting("query", "q"), register=False)
                near.append(time.perf_counter() - t)
                found += any(m.sighting.listing_id == f"l{i + 1}" for m in result.matches)
            register = []
            for k, h in enumerate(copies[: queries // 2]):
                new = Fingerprints(
                    sha256=hashlib.sha256(b"new%d" % k).digest(),
                    pixel_sha256=hashlib.sha256(b"newp%d" % k).digest(),
                    perceptual=h.to_bytes(8, "big"),
                )
                t = time.perf_counter()
                reg.lookup(new, Sighting(f"new-seller-{k}", f"new-{k}", "", "market"), register=True)
                register.append(time.perf_counter() - t)

            as_u64 = hashes.copy().view(">u8").ravel().astype(np.uint64)
            ram_scan = []
            for k, i in enumerate(picks.tolist()):
                q = np.uint64(copies[k])
                t = time.perf_counter()
                hits = np.flatnonzero(np.bitwise_count(as_u64 ^ q) <= bands.THRESHOLD)
                ram_scan.append(time.perf_counter() - t)
                assert i in hits
            store_scan = []
            band0 = [reg._band_key(0, v) for v in range(1 << layout.width)]
            for k in range(SCAN_REPEATS):
                t = time.perf_counter()
                blob = b"".join(
                    v for start in range(0, len(band0), 4096) for v in client.mget(band0[start : start + 4096]) if v
                )
                stored = np.frombuffer(blob, np.uint8).reshape(-1, 12)[:, 4:].copy().view(">u8").ravel()
                hits = np.flatnonzero(np.bitwise_count(stored ^ np.uint64(copies[k])) <= bands.THRESHOLD)
                store_scan.append(time.perf_counter() - t)
                assert len(stored) >= n and len(hits) >= 1
            scan_ms = float(np.median(store_scan)) * 1000
            print(f"exact lookup, sha index HGET:         {timed(exact_hget)}")
            print(f"exact lookup, full path (same bytes): {timed(exact_full)}")
            print(
                f"near-duplicate search, full path:     {timed(near)}  (found {found}/{queries} copies at "
                f"{FLIPS} flipped bits)"
            )
            print(f"register a new near copy, full path:  {timed(register)}")
            print(
                f"linear scan (a) read all {n:,} hashes from Redis + numpy: median {scan_ms:.1f} ms (of {SCAN_REPEATS})"
            )
            print(f"linear scan (b) numpy popcount over {n:,} hashes in RAM: {timed(ram_scan)}")
            print(
                f"index speed-up over (a): {scan_ms / pct(near, 50):.0f}x at p50, {scan_ms / pct(near, 99):.0f}x "
                f"at p99; over (b): {pct(ram_scan, 50) / pct(near, 50):.2f}x at p50"
            )
            print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
