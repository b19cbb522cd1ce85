"""A real SynthesisDetector server on the shared runtime whose behaviour the test picks.

Used where the runtime itself is under test (drain on SIGTERM, error mapping): the image's
filename selects "sleep:<seconds>", "crash" (an unexpected exception) or "invalid" (a
domain error). Run as a script, it serves until SIGTERM like a real service does.
"""

from __future__ import annotations

import asyncio
import sys

from grpc import aio

from imagetrust.v1 import synthesis_pb2, synthesis_pb2_grpc
from services.common import logging as logging_mod
from services.common.config import ServerConfig, load
from services.common.errors import InvalidImage
from services.common.server import ServerRuntime, Service

SERVICE_NAME = "imagetrust.v1.SynthesisDetector"


class _Servicer(synthesis_pb2_grpc.SynthesisDetectorServicer):
    async def Detect(self, request, context):
        name = request.image.filename
        if name.startswith("sleep:"):
            await asyncio.sleep(float(name.split(":", 1)[1]))
        elif name == "crash":
            raise RuntimeError("boom")
        elif name == "invalid":
            raise InvalidImage("that is not an image")
        return synthesis_pb2.DetectResponse(score=0.25, model_version="echo")


class EchoService(Service):
    name = "echo"
    service_names = (SERVICE_NAME,)

    def __init__(self, load_delay_s: float = 0.0) -> None:
        super().__init__()
        self.load_delay_s = load_delay_s

    def add_to_server(self, server: aio.Server) -> None:
        synthesis_pb2_grpc.add_SynthesisDetectorServicer_to_server(_Servicer(), server)

    async def load(self) -> None:
        await asyncio.sleep(self.load_delay_s)


if __name__ == "__main__":
    port, grace_s = int(sys.argv[1]), float(sys.argv[2])
    config = load(ServerConfig, {}, host="127.0.0.1", port=port, metrics_port=-1, grace_s=grace_s)
    logging_mod.configure("echo", "INFO", "json")
    asyncio.run(ServerRuntime(EchoService(), config).serve_until_signal())
    sys.exit(0)
