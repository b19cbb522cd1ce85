"""One check: validate once, fan out concurrently under one deadline, combine."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from imagetrust.v1 import gateway_pb2, metadata_pb2, synthesis_pb2
from services.common.config import GatewayConfig
from services.common.errors import InvalidImage
from services.common.imaging import sniff_format
from services.common.limits import check_bytes
from services.common.logging import REQUEST_ID_HEADER, new_request_id, request_id_var
from services.gateway.backends import Backends
from services.gateway.verdict import POLICY_VERSION, combine

log = logging.getLogger("imagetrust.gateway")

# Seconds kept back from the caller's deadline to combine and send the verdict.
RESPONSE_RESERVE_S = 0.02


class Checker:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.backends: Backends | None = None  # set by GatewayService.load()

    def _budget_s(self, request: gateway_pb2.CheckRequest, time_remaining: float | None) -> float:
        budget = (request.options.budget_ms or self.config.default_budget_ms) / 1000.0
        if time_remaining is not None:
            budget = min(budget, time_remaining - RESPONSE_RESERVE_S)
        return max(budget, 0.001)

    async def check(self, request: gateway_pb2.CheckRequest, time_remaining: float | None) -> gateway_pb2.CheckResponse:
        data = request.image.data
        check_bytes(data, self.config.max_message_bytes)
        if sniff_format(data) is None:
            raise InvalidImage(
                f"not a supported image (first bytes {data[:8].hex()}); send JPEG, PNG, WebP, TIFF or HEIC/HEIF"
            )
        request_id = request_id_var.get() or new_request_id()
        budget = self._budget_s(request, time_remaining)
        metadata = ((REQUEST_ID_HEADER, request_id),)
        calls: dict[str, asyncio.Task] = {}
        if not request.options.skip_synthesis:
            calls["synthesis"] = asyncio.ensure_future(
                self.backends.synthesis.Detect(
                    synthesis_pb2.DetectRequest(image=request.image, want_heatmap=request.options.want_heatmap),
                    timeout=budget, metadata=metadata,
                )
            )
        if not request.options.skip_metadata:
            calls["metadata"] = asyncio.ensure_future(
                self.backends.metadata.Analyze(
                    metadata_pb2.AnalyzeRequest(image=request.image, context=request.context, register=request.register),
                    timeout=budget, metadata=metadata,
                )
            )
        started = time.perf_counter()
        results = await asyncio.gather(*calls.values(), return_exceptions=True)
        answers: dict[str, object] = {}
        missing: list[str] = []
        for name, result in zip(calls, results):
            if isinstance(result, grpc.aio.AioRpcError):
                if result.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    # The image itself is bad: every backend would say so; tell the caller.
                    raise InvalidImage(f"{name}: {result.details()}")
                log.warning("%s failed: %s %s", name, result.code().name, result.details())
                missing.append(name)
            elif isinstance(result, BaseException):
                log.warning("%s failed: %r", name, result)
                missing.append(name)
            else:
                answers[name] = result
        verdict = combine(answers.get("synthesis"), answers.get("metadata"), tuple(missing))
        log.debug("fan-out done", extra={"elapsed_ms": round((time.perf_counter() - started) * 1000, 2)})
        response = gateway_pb2.CheckResponse(
            request_id=request_id, decision=verdict.decision, risk=verdict.risk, reasons=verdict.reasons,
            degraded=bool(missing), missing=missing, policy_version=POLICY_VERSION, client_ref=request.client_ref,
        )
        if "synthesis" in answers:
            response.synthesis.CopyFrom(answers["synthesis"])
            response.model_version = answers["synthesis"].model_version
        if "metadata" in answers:
            response.metadata.CopyFrom(answers["metadata"])
        return response
