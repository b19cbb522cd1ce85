"""Wires the metadata analysis and the reuse registry into the shared runtime."""

from __future__ import annotations

from grpc import aio

from imagetrust.v1 import metadata_pb2, metadata_pb2_grpc
from services.common.server import Service
from services.metadata.config import MetadataConfig
from services.metadata.registry.factory import open_registry
from services.metadata.registry.metrics import RegistryMetrics
from services.metadata.registry.monitor import RegistryMonitor
from services.metadata.servicer import MetadataServicer

SERVICE_NAME = metadata_pb2.DESCRIPTOR.services_by_name["MetadataAnalyzer"].full_name
# The reuse registry's own health name: NOT_SERVING while Redis is down, the service stays SERVING.
REGISTRY_HEALTH_NAME = f"{SERVICE_NAME}/registry"


class MetadataService(Service):
    name = "metadata"
    service_names = (SERVICE_NAME,)

    def __init__(self, config: MetadataConfig) -> None:
        super().__init__()
        self.config = config
        # Opened now (a file, or a Redis client): a registry that cannot be used stops the
        # start with a message. The monitor's pings begin in load().
        self.registry = open_registry(config)
        registry_metrics = RegistryMetrics(self.metrics.collector_registry, self.registry.backend)
        self.monitor = RegistryMonitor(
            self.registry, self.health, REGISTRY_HEALTH_NAME, config.registry_health_interval_s, registry_metrics
        )
        self.servicer = MetadataServicer(config, self.registry, registry_metrics, self.monitor)

    def add_to_server(self, server: aio.Server) -> None:
        metadata_pb2_grpc.add_MetadataAnalyzerServicer_to_server(self.servicer, server)

    async def load(self) -> None:
        await self.monitor.start()

    async def close(self) -> None:
        self.servicer.pool.shutdown(wait=False, cancel_futures=True)
        await self.monitor.stop()
        self.registry.close()
