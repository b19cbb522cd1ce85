"""Channels to the backend services.

round_robin over every address a target resolves to (dns:///synthesis:50053 behind a
headless Kubernetes Service), so a scaled-out Deployment is actually used: gRPC's default
pick_first would pin every call to one pod.
"""

from __future__ import annotations

import json

from grpc import aio

from imagetrust.v1 import metadata_pb2_grpc, synthesis_pb2_grpc
from services.common.config import GatewayConfig

# Retries only for UNAVAILABLE (the call never reached a servicer, so it is safe to repeat
# even for Analyze with register=true, which is idempotent by (image, listing) anyway).
_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": "imagetrust.v1.SynthesisDetector"}, {"service": "imagetrust.v1.MetadataAnalyzer"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.02s",
                    "maxBackoff": "0.2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


def channel_options(config: GatewayConfig) -> list[tuple[str, object]]:
    return [
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        # Reconnect quickly after a backend restarts (gRPC's default backoff grows to 120 s).
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
        ("grpc.keepalive_time_ms", 30_000),
    ]


class Backends:
    def __init__(self, config: GatewayConfig) -> None:
        options = channel_options(config)
        self.synthesis_channel = aio.insecure_channel(config.synthesis_addr, options=options)
        self.metadata_channel = aio.insecure_channel(config.metadata_addr, options=options)
        self.synthesis = synthesis_pb2_grpc.SynthesisDetectorStub(self.synthesis_channel)
        self.metadata = metadata_pb2_grpc.MetadataAnalyzerStub(self.metadata_channel)

    async def close(self) -> None:
        await self.synthesis_channel.close()
        await self.metadata_channel.close()
