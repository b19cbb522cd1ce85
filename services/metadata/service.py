"""Wires the metadata analysis and the reuse registry into the shared runtime."""

from __future__ import annotations

from grpc import aio

from imagetrust.v1 import metadata_pb2, metadata_pb2_grpc
from services.common.config import MetadataConfig
from services.common.server import Service
from services.metadata.servicer import MetadataServicer

SERVICE_NAME = metadata_pb2.DESCRIPTOR.services_by_name["MetadataAnalyzer"].full_name
# The registry's own health name: NOT_SERVING while Redis is down, the service stays SERVING.
REGISTRY_HEALTH_NAME = f"{SERVICE_NAME}/registry"


class MetadataService(Service):
    name = "metadata"
    service_names = (SERVICE_NAME,)

    def __init__(self, config: MetadataConfig) -> None:
        self.config = config
        self.servicer = MetadataServicer(config)
        self.monitor = None

    def add_to_server(self, server: aio.Server) -> None:
        metadata_pb2_grpc.add_MetadataAnalyzerServicer_to_server(self.servicer, server)

    # --- registry (issue 4) ---
    async def load(self) -> None:
        from services.metadata.registry.factory import open_registry
        from services.metadata.registry.metrics import RegistryMetrics
        from services.metadata.registry.monitor import RegistryMonitor

        registry = open_registry(self.config)
        metrics = RegistryMetrics(self.metrics.registry, registry.backend)
        self.monitor = RegistryMonitor(registry, self.health, REGISTRY_HEALTH_NAME,
                                       self.config.registry_health_interval_s, metrics)
        self.servicer.registry = registry
        self.servicer.registry_metrics = metrics
        self.servicer.monitor = self.monitor
        await self.monitor.start()

    async def close(self) -> None:
        self.servicer.pool.shutdown(wait=False, cancel_futures=True)
        if self.monitor is not None:
            await self.monitor.stop()
            self.monitor.registry.close()
