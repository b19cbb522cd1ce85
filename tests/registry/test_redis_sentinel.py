"""The registry behind Redis Sentinel: a real primary, a real replica and a real sentinel
(`redis-server --sentinel`, generated config, free ports), a registration before a forced
failover found after it on the promoted replica, and Sentinel URLs parsed or refused."""

from __future__ import annotations

import dataclasses
import pathlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from bench.redis_local import start_replica
from services.common.config import MetadataConfig, load
from services.metadata.registry.model import Sighting
from services.metadata.registry.redis_backend import RedisRegistry
from services.metadata.registry.redis_url import parse_sentinel
from tests.helpers.paths import require_tool
from tests.helpers.ports import free_port
from tests.helpers.redis_servers import RedisServer, start_redis
from tests.registry.conftest import make_fp

SERVICE = "imagetrust-registry"
START_TIMEOUT_S = 10.0  # seconds for the sentinel to answer and to see the replica
FAILOVER_TIMEOUT_S = 20.0  # seconds for a forced failover to promote the replica


@dataclasses.dataclass
class SentinelGroup:
    primary: RedisServer
    replica: RedisServer
    sentinel_port: int
    sentinel: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}/0"

    def ask(self, *command: str) -> object:
        return redis.Redis(port=self.sentinel_port, decode_responses=True).execute_command(*command)


def _start_sentinel(primary_port: int, workdir: pathlib.Path) -> tuple[subprocess.Popen, int]:
    binary = require_tool("redis-server", "apt-get install redis-server (scripts/setup.sh does this)")
    port = free_port()
    conf = workdir / "sentinel.conf"  # a sentinel rewrites its config file: it must be writable
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n"
        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
        f"sentinel failover-timeout {SERVICE} 5000\n"
    )
    process = subprocess.Popen([binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"redis sentinel did not start on port {port}")


@pytest.fixture
def sentinel_group(tmp_path_factory) -> Iterator[SentinelGroup]:
    primary = start_redis(tmp_path_factory.mktemp("sentinel-primary"))
    replica_process, replica_port = start_replica(primary.port, tmp_path_factory.mktemp("sentinel-replica"))
    sentinel, port = _start_sentinel(primary.port, tmp_path_factory.mktemp("sentinel"))
    group = SentinelGroup(primary, RedisServer(replica_port, replica_process), port, sentinel)
    # The sentinel learns of the replica from the primary's INFO reply: wait until it lists it.
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and not group.ask("SENTINEL", "REPLICAS", SERVICE):
        time.sleep(0.1)
    assert group.ask("SENTINEL", "REPLICAS", SERVICE), "the sentinel never saw the replica"
    yield group
    for process in (sentinel, replica_process, primary.process):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(10)


def _primary_port(group: SentinelGroup) -> int:
    return int(group.ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)[1])


def test_the_registry_follows_the_primary_across_a_failover(sentinel_group):
    registry = RedisRegistry(sentinel_group.url, prefix="ha")
    seller_a, seller_b = Sighting(seller_id="a", listing_id="1"), Sighting(seller_id="b", listing_id="2")
    assert registry.lookup(make_fp(1), seller_a, register=True).registered
    assert _primary_port(sentinel_group) == sentinel_group.primary.port
    # The write reached the primary through the sentinel's address, and the replica holds it.
    assert redis.Redis(port=sentinel_group.primary.port).keys(b"{ha}:*")
    assert redis.Redis(port=sentinel_group.primary.port).wait(1, 2000) == 1

    # Promote the replica (no quorum vote needed). The sentinel answers NOGOODSLAVE until it
    # has had the replica's own INFO reply (it polls replicas every 10 s at first), so ask again.
    deadline = time.monotonic() + FAILOVER_TIMEOUT_S
    while True:
        try:
            sentinel_group.ask("SENTINEL", "FAILOVER", SERVICE)
            break
        except redis.ResponseError as exc:
            if "NOGOODSLAVE" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    while time.monotonic() < deadline and _primary_port(sentinel_group) != sentinel_group.replica.port:
        time.sleep(0.1)
    assert _primary_port(sentinel_group) == sentinel_group.replica.port, "no failover"

    # The next lookups reach the promoted replica: the earlier registration is found there
    # (another seller's copy), and new registrations are written to it. A call during the
    # switch may answer unavailable, never wrongly.
    result = None
    while time.monotonic() < deadline:
        result = registry.lookup(make_fp(1), seller_b, register=True)
        if result.available:
            break
        time.sleep(0.2)
    assert result is not None and result.available, result
    assert [m.sighting.seller_id for m in result.matches] == ["a"]
    assert result.registered
    assert redis.Redis(port=sentinel_group.replica.port).info("replication")["role"] == "master"
    registry.close()


def test_the_metadata_service_serves_from_a_sentinel_url(sentinel_group, server_factory):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from imagetrust.v1 import common_pb2, metadata_pb2, metadata_pb2_grpc
    from services.metadata.service import REGISTRY_HEALTH_NAME
    from tests.helpers.paths import SAMPLES

    server = server_factory("metadata", redis_url=sentinel_group.url)
    with server.channel() as channel:
        reply = metadata_pb2_grpc.MetadataAnalyzerStub(channel).Analyze(
            metadata_pb2.AnalyzeRequest(
                image=common_pb2.Image(data=(SAMPLES / "camera_original.jpg").read_bytes()),
                context=common_pb2.Context(seller_id="s-1"),
                register=True,
            ),
            timeout=30,
        )
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=REGISTRY_HEALTH_NAME), timeout=5
        )
    assert reply.registry.available and reply.registry.backend == "redis"
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_sentinel_urls_parse():
    spec = parse_sentinel("redis+sentinel://:s3cret@s1:26379,s2:26380,s3/mymaster/2?sentinel_password=sp")
    assert spec["sentinels"] == [("s1", 26379), ("s2", 26380), ("s3", 26379)]
    assert (spec["service_name"], spec["db"]) == ("mymaster", 2)
    assert (spec["password"], spec["sentinel_password"]) == ("s3cret", "sp")
    assert not spec["ssl"] and parse_sentinel("rediss+sentinel://s1:26379/m")["ssl"]


@pytest.mark.parametrize(
    "url, message",
    [
        ("redis+sentinel://s1:26379", "service_name"),
        ("redis+sentinel://s1:26379/m/x", "db"),
        ("redis+sentinel://s1:port/m", "host:port"),
        ("redis+sentinel://s1:26379/m?timeout=1", "unknown options"),
    ],
)
def test_bad_sentinel_urls_fail_at_start_up_naming_the_part(url, message):
    with pytest.raises(ValueError, match=message):
        load(MetadataConfig, {}, redis_url=url)


def test_sentinel_and_cluster_exclude_each_other():
    with pytest.raises(ValueError, match="exclude each other"):
        load(MetadataConfig, {}, redis_url="redis+sentinel://s1:26379/m/0", redis_cluster=True)
