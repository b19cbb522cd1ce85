"""Wires the gateway into the shared runtime."""

from __future__ import annotations

from grpc import aio

from imagetrust.v1 import gateway_pb2, gateway_pb2_grpc
from services.common.auth import ApiKeyInterceptor, load_key_hashes
from services.common.server import Service
from services.gateway.backends import Backends
from services.gateway.checker import Checker
from services.gateway.config import GatewayConfig
from services.gateway.metrics import GatewayMetrics
from services.gateway.policy import load_policy
from services.gateway.servicer import ImageTrustServicer

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["ImageTrust"].full_name


class GatewayService(Service):
    name = "gateway"
    service_names = (SERVICE_NAME,)

    def __init__(self, config: GatewayConfig) -> None:
        super().__init__()
        self.config = config
        # Read and validated now, so a bad policy or keys file stops the start with a message.
        self.policies = load_policy(config.policy_path)
        self.api_keys = load_key_hashes(config.api_keys_file, config.api_key_hashes)
        self.gateway_metrics = GatewayMetrics(self.metrics.collector_registry)
        self.backends = Backends(config, self.gateway_metrics)
        self.checker = Checker(config, self.policies, self.gateway_metrics, self.backends)

    def add_to_server(self, server: aio.Server) -> None:
        gateway_pb2_grpc.add_ImageTrustServicer_to_server(ImageTrustServicer(self.checker, self.config), server)

    def interceptors(self) -> list[aio.ServerInterceptor]:
        return [ApiKeyInterceptor(self.api_keys)] if self.api_keys else []

    async def load(self) -> None:
        # aio channels bind to the running event loop: the backends open theirs now.
        self.backends.start()

    async def close(self) -> None:
        await self.backends.close()
        self.checker.close()
