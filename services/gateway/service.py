"""Wires the gateway into the shared runtime."""

from __future__ import annotations

from grpc import aio

from imagetrust.v1 import gateway_pb2, gateway_pb2_grpc
from services.common.config import GatewayConfig
from services.common.server import Service
from services.gateway.backends import Backends
from services.gateway.checker import Checker
from services.gateway.servicer import ImageTrustServicer

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["ImageTrust"].full_name


class GatewayService(Service):
    name = "gateway"
    service_names = (SERVICE_NAME,)

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.checker = Checker(config)

    def add_to_server(self, server: aio.Server) -> None:
        gateway_pb2_grpc.add_ImageTrustServicer_to_server(ImageTrustServicer(self.checker), server)

    async def load(self) -> None:
        # aio channels bind to the running event loop, so they are made here, not in __init__.
        self.checker.backends = Backends(self.config)

    async def close(self) -> None:
        if self.checker.backends is not None:
            await self.checker.backends.close()
