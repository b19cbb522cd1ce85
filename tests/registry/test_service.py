"""The registry through the real gRPC metadata server: SQLite default, Redis, Redis outage,
Redis Cluster."""

from __future__ import annotations

import io
import subprocess
import time
import urllib.request

import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from imagetrust.v1 import common_pb2, metadata_pb2, metadata_pb2_grpc
from services.metadata.service import REGISTRY_HEALTH_NAME, SERVICE_NAME
from tests.helpers.paths import require_tool
from tests.helpers.redis_servers import RedisServer

HEALTH_WAIT_S = 10.0  # seconds for the monitor (0.2 s period here) to notice a change


def _metric(server, sample: str) -> float:
    """One sample of the server's /metrics, e.g. 'imagetrust_registry_up{backend="redis"}'."""
    text = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _photo(bsds, index: int = 0, quality: int = 92, scale: float = 1.0) -> bytes:
    path = sorted((bsds / "val" / "images").glob("*.jpg"))[index]
    img = Image.open(path).convert("RGB")
    if scale != 1.0:
        img = img.resize((round(img.width * scale), round(img.height * scale)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _analyze(server, data: bytes, seller: str, listing: str, register: bool = True):
    with server.channel() as ch:
        return metadata_pb2_grpc.MetadataAnalyzerStub(ch).Analyze(
            metadata_pb2.AnalyzeRequest(
                image=common_pb2.Image(data=data),
                context=common_pb2.Context(seller_id=seller, listing_id=listing, platform="market"),
                register=register,
            ),
            timeout=30,
        )


def _health(server, name: str) -> int:
    with server.channel() as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status


def _wait_health(server, name: str, want: int) -> None:
    deadline = time.monotonic() + HEALTH_WAIT_S
    while _health(server, name) != want and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _health(server, name) == want


def test_sqlite_default_finds_a_recompressed_copy_from_another_seller(server_factory, tmp_path, bsds):
    server = server_factory("metadata", registry_path=str(tmp_path / "reg.sqlite3"))
    first = _analyze(server, _photo(bsds), "alice", "a-1")
    assert first.registry.available and first.registry.backend == "sqlite" and first.registry.registered
    assert not first.registry.matches
    assert first.fingerprints.perceptual_algorithm == "phash64" and len(first.fingerprints.pixel_key) == 64
    assert first.fingerprints.pixel_key_algorithm == "blake3-jpeg-coded" and not first.fingerprints.pixel_sha256
    copy = _analyze(server, _photo(bsds, quality=70, scale=0.8), "mallory", "m-1")
    assert [m.kind for m in copy.registry.matches] == [metadata_pb2.NEAR_DUPLICATE]
    assert copy.registry.matches[0].sighting.seller_id == "alice"
    reused = [f for f in copy.findings if f.code == "REUSED_BY_OTHER_SELLER"]
    assert reused and reused[0].severity == common_pb2.HIGH and reused[0].source == "registry"
    assert copy.risk >= 0.5
    assert _health(server, REGISTRY_HEALTH_NAME) == health_pb2.HealthCheckResponse.SERVING
    _analyze(server, _photo(bsds, 2), "carol", "c-1", register=False)
    # What an SRE sees: the registry answers, 2 registrations and 1 lookup, what they found.
    assert _metric(server, 'imagetrust_registry_up{backend="sqlite"}') == 1.0
    assert _metric(server, 'imagetrust_registry_lookups_total{backend="sqlite",outcome="registered"}') == 2.0
    assert _metric(server, 'imagetrust_registry_lookups_total{backend="sqlite",outcome="looked_up"}') == 1.0
    assert _metric(server, 'imagetrust_registry_lookup_seconds_count{backend="sqlite"}') == 3.0
    assert _metric(server, 'imagetrust_registry_matches_total{kind="near_duplicate"}') == 1.0
    assert _metric(server, 'imagetrust_registry_findings_total{code="REUSED_BY_OTHER_SELLER"}') == 1.0


def _start_redis_on(port: int, tmp_path) -> subprocess.Popen:
    binary = require_tool("redis-server", "apt-get install redis-server")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port).ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail(f"redis-server did not restart on port {port}")


def test_redis_outage_answers_unavailable_and_recovers(server_factory, redis_server: RedisServer, bsds, tmp_path):
    server = server_factory("metadata", redis_url=redis_server.url, registry_health_interval_s=0.2)
    photo = _photo(bsds, 1)
    ok = _analyze(server, photo, "alice", "a-1")
    assert ok.registry.available and ok.registry.backend == "redis" and ok.registry.registered
    assert _health(server, REGISTRY_HEALTH_NAME) == health_pb2.HealthCheckResponse.SERVING

    redis_server.process.terminate()
    redis_server.process.wait(10)
    down = _analyze(server, photo, "bob", "b-1")
    assert not down.registry.available and "redis" in down.registry.error
    assert down.image.width > 0 and down.fingerprints.sha256  # the rest of the analysis still stands
    _wait_health(server, REGISTRY_HEALTH_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert _metric(server, 'imagetrust_registry_up{backend="redis"}') == 0.0
    assert _metric(server, 'imagetrust_registry_lookups_total{backend="redis",outcome="unavailable"}') == 1.0
    assert _health(server, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING
    assert _health(server, "") == health_pb2.HealthCheckResponse.SERVING

    redis_server.process = _start_redis_on(redis_server.port, tmp_path)  # the fixture stops it at the end
    _wait_health(server, REGISTRY_HEALTH_NAME, health_pb2.HealthCheckResponse.SERVING)
    assert _metric(server, 'imagetrust_registry_up{backend="redis"}') == 1.0
    back = _analyze(server, photo, "carol", "c-1")
    assert back.registry.available and back.registry.registered
    # A fresh Redis (no persistence): carol is the first sighting now; the next seller sees her.
    again = _analyze(server, photo, "dave", "d-1", register=False)
    assert [m.sighting.seller_id for m in again.registry.matches] == ["carol"]


def test_redis_cluster_registry_through_the_service(server_factory, redis_cluster, bsds):
    """IMAGETRUST_REDIS_CLUSTER: the metadata server shards its registry over a real 3-node
    cluster; a re-compressed copy from another seller is found, health is SERVING."""
    server = server_factory(
        "metadata",
        redis_url=redis_cluster.url,
        redis_cluster=True,
        registry_prefix="svc",
        registry_health_interval_s=0.2,
    )
    first = _analyze(server, _photo(bsds, 2), "alice", "a-1")
    assert first.registry.available and first.registry.backend == "redis-cluster" and first.registry.registered
    copy = _analyze(server, _photo(bsds, 2, quality=70, scale=0.8), "mallory", "m-1")
    assert [(m.kind, m.sighting.seller_id) for m in copy.registry.matches] == [(metadata_pb2.NEAR_DUPLICATE, "alice")]
    assert any(f.code == "REUSED_BY_OTHER_SELLER" for f in copy.findings)
    assert _health(server, REGISTRY_HEALTH_NAME) == health_pb2.HealthCheckResponse.SERVING
    used = [redis.Redis(port=port).dbsize() for port in redis_cluster.ports]
    assert sum(n > 0 for n in used) >= 2, used  # one registration's keys span nodes
