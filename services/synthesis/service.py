"""Wires the synthesis engine into the shared runtime."""

from __future__ import annotations

from grpc import aio

from imagetrust.v1 import synthesis_pb2, synthesis_pb2_grpc
from services.common.server import Service
from services.synthesis.config import SynthesisConfig
from services.synthesis.engine import SynthesisEngine
from services.synthesis.servicer import SynthesisServicer

SERVICE_NAME = synthesis_pb2.DESCRIPTOR.services_by_name["SynthesisDetector"].full_name


class SynthesisService(Service):
    name = "synthesis"
    service_names = (SERVICE_NAME,)

    def __init__(self, config: SynthesisConfig) -> None:
        super().__init__()
        self.config = config
        self.engine = SynthesisEngine(config)

    def add_to_server(self, server: aio.Server) -> None:
        synthesis_pb2_grpc.add_SynthesisDetectorServicer_to_server(SynthesisServicer(self.engine), server)

    async def load(self) -> None:
        # The engine's metrics go on this server's registry, made with the service.
        await self.engine.load(self.metrics.collector_registry)

    async def close(self) -> None:
        await self.engine.close()
