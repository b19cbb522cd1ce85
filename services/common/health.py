"""grpc.health.v1 with a status per service name.

Every name starts NOT_SERVING; the runtime flips the service's names to SERVING once its
load() returned (models warmed up, stores connected) and back on shutdown. Services may
report extra components under their own names (for example the metadata service's
registry), so a dependency's outage shows in health without taking the service out of
rotation.
"""

from __future__ import annotations

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
OVERALL = ""  # the empty name: the server as a whole, what Kubernetes' grpc probe asks by default


class Health:
    def __init__(self, service_names: tuple[str, ...]) -> None:
        self.service_names = service_names
        self.servicer = health.aio.HealthServicer()

    def add_to_server(self, server: aio.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)

    async def set(self, name: str, serving: bool) -> None:
        await self.servicer.set(name, SERVING if serving else NOT_SERVING)

    async def set_all(self, serving: bool) -> None:
        for name in (OVERALL, *self.service_names):
            await self.set(name, serving)

    async def shutdown(self) -> None:
        """NOT_SERVING for every name, and ignore later updates: we are going away."""
        await self.servicer.enter_graceful_shutdown()
