"""Shared fixtures: real servers on free loopback ports, a real redis-server, real files.

The helpers they build on are in tests/helpers (test modules import them from there).
Nothing here is mocked. A tool a test needs (redis-server, exiftool, the datasets) that is
missing makes the test fail with a message saying how to install it, never skip.
"""

from __future__ import annotations

import pathlib
import signal
from collections.abc import Iterator

import pytest
import redis

from bench.redis_local import LocalCluster, start_cluster, start_replica
from tests.helpers.paths import BSDS, EXIF_SAMPLES, SAMPLES, require_dataset, require_tool
from tests.helpers.redis_servers import RedisPair, RedisServer, start_redis
from tests.helpers.servers import RunningServer, start_server


@pytest.fixture
def server_factory() -> Iterator:
    started: list[RunningServer] = []

    def factory(name: str, **overrides) -> RunningServer:
        server = start_server(name, **overrides)
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session")
def jpeg() -> bytes:
    return (SAMPLES / "camera_original.jpg").read_bytes()


@pytest.fixture(scope="session")
def jpegs() -> list[bytes]:
    return [p.read_bytes() for p in sorted(SAMPLES.glob("*.jpg"))]


@pytest.fixture(scope="module")
def backends_module() -> Iterator[tuple[RunningServer, RunningServer]]:
    """Real metadata and synthesis services shared by one test module."""
    metadata = start_server("metadata")
    synthesis = start_server("synthesis")
    yield metadata, synthesis
    synthesis.stop()
    metadata.stop()


@pytest.fixture(scope="module")
def gateway_module(backends_module) -> Iterator[RunningServer]:
    metadata, synthesis = backends_module
    gateway = start_server("gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address)
    yield gateway
    gateway.stop()


@pytest.fixture
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.process.terminate()
    server.process.wait(10)


@pytest.fixture
def redis_pair(tmp_path_factory) -> Iterator[RedisPair]:
    """A plain primary and one replica (`--replicaof`), both real redis-servers (~0.2 s)."""
    primary = start_redis(tmp_path_factory.mktemp("redis-primary"))
    try:
        process, port = start_replica(primary.port, tmp_path_factory.mktemp("redis-replica"))
    except RuntimeError as exc:
        primary.process.terminate()
        primary.process.wait(10)
        pytest.fail(str(exc), pytrace=False)
    pair = RedisPair(primary, RedisServer(port, process))
    yield pair
    for server in (pair.replica, pair.primary):
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)  # a test may have left it stopped (SIGSTOP)
            server.process.terminate()
            server.process.wait(10)


@pytest.fixture(scope="session")
def redis_cluster_session(tmp_path_factory) -> Iterator[LocalCluster]:
    """One real 3-node Redis Cluster (no replicas) for the whole session: forming one takes
    ~2.5 s (redis-cli waits for the nodes to agree)."""
    require_tool("redis-server", "apt-get install redis-server (scripts/setup.sh does this)")
    require_tool("redis-cli", "apt-get install redis-tools (scripts/setup.sh does this)")
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_cluster(redis_cluster_session: LocalCluster) -> LocalCluster:
    """The session's cluster, emptied: every test starts from no keys on any node."""
    for port in redis_cluster_session.ports:
        redis.Redis(port=port).flushall()
    return redis_cluster_session


@pytest.fixture(scope="session")
def exif_samples() -> pathlib.Path:
    return require_dataset(EXIF_SAMPLES)


@pytest.fixture(scope="session")
def bsds() -> pathlib.Path:
    return require_dataset(BSDS)
