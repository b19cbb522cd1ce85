"""The shared contract fixture: every registry contract test runs against every backend:
SQLite, the single-slot Redis layout, and the sharded layout both on a real 3-node Redis
Cluster and on one plain redis-server."""

from __future__ import annotations

import hashlib
import random

import pytest

from services.metadata.fingerprints import Fingerprints
from services.metadata.registry.redis_backend import RedisRegistry
from services.metadata.registry.redis_cluster_backend import RedisClusterRegistry
from services.metadata.registry.sqlite_backend import SqliteRegistry

BACKENDS = ("sqlite", "redis", "redis-cluster", "redis-sharded")


def make_fp(
    seed: int, *, flips: int = 0, base: int | None = None, uid: str = "", pixels_of: int | None = None
) -> Fingerprints:
    """Fingerprints of a synthetic image `seed`; `base`+`flips` makes a near copy of another."""
    rng = random.Random(base if base is not None else seed)
    value = rng.getrandbits(64)
    for bit in random.Random(seed).sample(range(64), flips):
        value ^= 1 << bit
    pix_seed = pixels_of if pixels_of is not None else seed
    return Fingerprints(
        sha256=hashlib.sha256(f"bytes-{seed}".encode()).digest(),
        pixel_sha256=hashlib.sha256(f"pixels-{pix_seed}".encode()).digest(),
        perceptual=value.to_bytes(8, "big"),
        image_unique_id=uid,
    )


def key_contents(client, prefix: bytes) -> dict:
    """Every key under prefix (prefix cut off) -> its value (strings) or field map (hashes)."""
    out = {}
    for key in client.scan_iter(prefix + b"*"):
        out[key[len(prefix) :]] = client.hgetall(key) if client.type(key) == b"hash" else client.get(key)
    return out


@pytest.fixture
def open_registry(request, tmp_path):
    """Opens registries of the parametrised backend (several may share one store)."""
    backend = request.param
    opened = []
    if backend == "redis-cluster":
        redis_url = request.getfixturevalue("redis_cluster").url
    else:
        redis_url = request.getfixturevalue("redis_server").url if backend.startswith("redis") else ""

    def factory(**kwargs):
        if backend == "redis":
            reg = RedisRegistry(redis_url, **kwargs)
        elif backend.startswith("redis-"):
            reg = RedisClusterRegistry(redis_url, cluster=backend == "redis-cluster", **kwargs)
        else:
            kwargs.pop("prefix", None)
            reg = SqliteRegistry(tmp_path / "registry.sqlite3", **kwargs)
        opened.append(reg)
        return reg

    yield factory
    for reg in opened:
        reg.close()


def pytest_generate_tests(metafunc):
    if "open_registry" in metafunc.fixturenames:
        metafunc.parametrize("open_registry", BACKENDS, indirect=True)
