"""Registry health: a separate health name, so a Redis outage shows without taking the
metadata service out of rotation (its analysis still answers, marked registry-unavailable).
"""

from __future__ import annotations

import asyncio
import logging

from services.metadata.registry.base import Registry, RegistryUnavailable
from services.metadata.registry.metrics import RegistryMetrics

log = logging.getLogger("imagetrust.metadata.registry")


class RegistryMonitor:
    def __init__(
        self, registry: Registry, health, name: str, interval_s: float, metrics: RegistryMetrics | None = None
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.health = health
        self.name = name
        self.interval_s = interval_s
        self.available: bool | None = None
        self._task: asyncio.Task | None = None

    async def observe(self, available: bool, error: str = "") -> None:
        """Records what a ping or a lookup saw; flips health on a change."""
        if self.metrics is not None:
            self.metrics.set_available(available)
        if available != self.available:
            if available:
                log.info("registry available", extra={"backend": self.registry.backend})
            else:
                log.warning("registry unavailable", extra={"backend": self.registry.backend, "error": error})
            self.available = available
            await self.health.set(self.name, available)

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self.registry.ping)
        except RegistryUnavailable as exc:
            await self.observe(False, str(exc))
        else:
            await self.observe(True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.check()

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._run(), name="registry-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
