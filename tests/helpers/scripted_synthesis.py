"""ScriptedSynthesis: a real grpc.aio SynthesisDetector server (its own event loop and port,
with grpc.health.v1) with a configurable delay and score. It makes a backend slow for real,
or score like a trained model, without a model; it also records the x-request-id each call
carried."""

from __future__ import annotations

import asyncio
import threading

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from imagetrust.v1 import synthesis_pb2, synthesis_pb2_grpc
from services.gateway.backends import SYNTHESIS_SERVICE


class _ScriptedServicer(synthesis_pb2_grpc.SynthesisDetectorServicer):
    def __init__(self, owner: ScriptedSynthesis) -> None:
        self.owner = owner

    async def Detect(self, request, context):
        owner = self.owner
        owner.calls += 1
        owner.request_ids.append(dict(context.invocation_metadata()).get("x-request-id", ""))
        owner.in_flight += 1
        owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
        try:
            if owner.delay_s:
                await asyncio.sleep(owner.delay_s)
        finally:
            owner.in_flight -= 1
        if owner.invalid:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "cannot decode the jpeg image (truncated or corrupt?)"
            )
        return synthesis_pb2.DetectResponse(
            score=self.owner.score,
            global_score=self.owner.score,
            model_version="scripted-1",
            model_arch="scripted",
            placeholder=False,
            device="cpu",
        )


class ScriptedSynthesis:
    """A real SynthesisDetector server that sleeps `delay_s` then answers `score`."""

    def __init__(self, delay_s: float = 0.0, score: float = 0.0, port: int = 0, invalid: bool = False) -> None:
        self.delay_s = delay_s
        self.score = score
        self.invalid = invalid  # answer INVALID_ARGUMENT, as a backend that cannot decode the image
        self.calls = 0
        self.request_ids: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0  # most Detect calls in progress at once
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="scripted-synthesis")
        self._thread.start()
        self.port = self._call(self._start(port))

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self, port: int) -> int:
        self.server = aio.server()
        synthesis_pb2_grpc.add_SynthesisDetectorServicer_to_server(_ScriptedServicer(self), self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        bound = self.server.add_insecure_port(f"127.0.0.1:{port}")
        await self.server.start()
        await self.health.set(SYNTHESIS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        return bound

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        self._call(self.health.set(SYNTHESIS_SERVICE, status))

    def stop(self) -> None:
        self._call(self.server.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
