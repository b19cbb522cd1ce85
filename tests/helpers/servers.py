"""Real services on free loopback ports, in this process, and polling until something holds."""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from services.common.config import load
from services.common.server import ServerRuntime
from services.service_specs import SERVICES, build

T = TypeVar("T")
WAIT_STEP_S = 0.05  # seconds between polls in wait_until


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
    spec = SERVICES[name]
    base = {"host": "127.0.0.1", "port": 0, "metrics_port": 0, "log_format": "text"}
    if name == "metadata" and not overrides.get("redis_url"):
        # A registry of its own per server: never the user's default file, never shared
        # between tests.
        base["registry_path"] = tempfile.mkdtemp(prefix="imagetrust-registry-") + "/registry.sqlite3"
    config = load(spec.config_class, environ={}, **{**base, **overrides})
    return RunningServer(build(name, config), config)


def wait_until(predicate: Callable[[], T], timeout_s: float, what: str) -> T:
    """predicate()'s first truthy value, polled every WAIT_STEP_S; AssertionError naming
    `what` after timeout_s seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(WAIT_STEP_S)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
