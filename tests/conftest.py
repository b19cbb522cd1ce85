"""Shared fixtures: real servers on free loopback ports, a real redis-server, real files.

Nothing here is mocked. A tool a test needs (redis-server, exiftool, the datasets) that is
missing makes the test fail with a message saying how to install it, never skip.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
import redis

from bench.redis_local import LocalCluster, start_cluster, start_replica
from services.common.config import load
from services.common.server import ServerRuntime

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"
EXIF_SAMPLES = SHARED / "exif-samples"
BSDS = SHARED / "bsds500"
SAMPLES = REPO / "imagetrust" / "samples"
REDIS_START_TIMEOUT_S = 10.0  # seconds


def require_tool(name: str, install_hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required for this test and is not installed: {install_hint}", pytrace=False)
    return path


def require_dataset(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (CI clones the repo with ../shared beside it)", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """A ServerRuntime on its own event loop in a background thread."""

    def __init__(self, service, config) -> None:
        self.loop = asyncio.new_event_loop()
        self.runtime = ServerRuntime(service, config)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name=f"server-{service.name}")
        self._thread.start()
        self.call(self.runtime.start(), timeout=300)

    def call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def service(self):
        return self.runtime.service

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.runtime.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.runtime.metrics_port}/metrics"

    def channel(self, **options) -> grpc.Channel:
        return grpc.insecure_channel(self.address, options=list(options.items()))

    def stop(self, grace_s: float = 1.0) -> None:
        if self.runtime.server is not None and not self.runtime._stopped.is_set():
            self.call(self.runtime.stop(grace_s))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def start_server(name: str, **overrides) -> RunningServer:
    """Starts service `name` on free loopback ports with config overrides."""
    from services.service_specs import SERVICES, build

    spec = SERVICES[name]
    base = {"host": "127.0.0.1", "port": 0, "metrics_port": 0, "log_format": "text"}
    if name == "metadata" and not overrides.get("redis_url"):
        # A registry of its own per server: never the user's default file, never shared
        # between tests.
        base["registry_path"] = tempfile.mkdtemp(prefix="imagetrust-registry-") + "/registry.sqlite3"
    config = load(spec.config_class, environ={}, **{**base, **overrides})
    return RunningServer(build(name, config), config)


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


@dataclasses.dataclass
class RedisServer:
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis(tmp_path: pathlib.Path, port: int = 0, appendonly: bool = False) -> RedisServer:
    """port 0: a free one. appendonly: every write fsynced to an AOF in tmp_path, so a
    server started again on the same directory has every acknowledged write."""
    binary = require_tool("redis-server", "apt-get install redis-server (scripts/setup.sh does this)")
    port = port or free_port()
    durability = ["--appendonly", "yes", "--appendfsync", "always"] if appendonly else ["--appendonly", "no"]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *durability, "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return RedisServer(port, process)
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"redis-server did not start on port {port}")


@pytest.fixture
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.process.terminate()
    server.process.wait(10)


@dataclasses.dataclass
class RedisPair:
    primary: RedisServer
    replica: RedisServer  # replicaof the primary, link up when the fixture hands it over


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
