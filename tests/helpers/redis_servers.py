"""Real redis-server processes on free ports (a tool the tests need: missing, they fail)."""

from __future__ import annotations

import dataclasses
import pathlib
import socket
import subprocess
import time

import pytest

from tests.helpers.paths import require_tool
from tests.helpers.ports import free_port

REDIS_START_TIMEOUT_S = 10.0  # seconds


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
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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


@dataclasses.dataclass
class RedisPair:
    primary: RedisServer
    replica: RedisServer  # replicaof the primary, link up when the fixture hands it over
