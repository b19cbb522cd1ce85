"""One check: validate once, fan out concurrently under one deadline budget, combine.

Budget: an image gets `options.budget_ms` (or the server default), cut to the caller's
deadline minus a reserve (reserve_s: time to combine and send the verdict). Both backends
run at the same time, so each gets that whole remaining budget, capped per backend by
synthesis_budget_ms / metadata_budget_ms when set. A backend that does not answer within
its share, errors, or is known down is left out: the verdict is degraded, never a failure.
The only backend errors passed on are INVALID_ARGUMENT (the image itself is bad: the
caller must know, and every backend would say the same).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import grpc
from grpc import aio

from imagetrust.channel import REQUEST_ID_HEADER
from imagetrust.v1 import common_pb2, gateway_pb2, metadata_pb2, synthesis_pb2
from services.common import status, tracing
from services.common.errors import DeadlineExceeded, InvalidImage
from services.common.imaging import probe
from services.common.limits import check_bytes, check_context, check_id
from services.common.logging import new_request_id, request_id_var
from services.gateway.backends import Backend, Backends
from services.gateway.config import GatewayConfig
from services.gateway.metrics import GatewayMetrics
from services.gateway.policy import PolicySet
from services.gateway.verdict import decide

log = logging.getLogger("imagetrust.gateway")
_tracer = tracing.tracer("imagetrust.gateway")

# Kept back from the caller's deadline to combine and send the verdict: at least
# RESPONSE_RESERVE_S seconds, or RESPONSE_RESERVE_FRACTION of the time left when that is
# more. Combining takes well under a millisecond; the reserve absorbs what the server cannot
# see: the request's time in transit (the deadline travels as a relative timeout) and
# scheduling delays on a loaded node, which grow with load rather than staying fixed.
RESPONSE_RESERVE_S = 0.02  # seconds
RESPONSE_RESERVE_FRACTION = 0.1  # of the time left until the deadline


def reserve_s(time_remaining: float) -> float:
    return max(RESPONSE_RESERVE_S, RESPONSE_RESERVE_FRACTION * time_remaining)


_MAX_CAUSE_CHARS = 160  # characters of a backend's error kept in the reason
PROBE_THREADS = 1  # threads reading image headers (see Checker.__init__)
# Backend codes that suggest the backend went away: probe its health now.
_SUSPECT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class Checker:
    def __init__(self, config: GatewayConfig, policies: PolicySet, metrics: GatewayMetrics, backends: Backends) -> None:
        """backends: their channels open in Backends.start(), before the first call."""
        self.config = config
        self.policies = policies
        self.metrics = metrics
        self.backends = backends
        # Header reads hold the GIL (Python code in Pillow), so more threads would add no
        # throughput, only threads taking the GIL from the event loop: measured with four
        # slow uploads at once, a health probe waited ~100 ms with asyncio's default pool
        # and ~25 ms with this one thread.
        self._probe_pool = ThreadPoolExecutor(max_workers=PROBE_THREADS, thread_name_prefix="probe")

    def close(self) -> None:
        self._probe_pool.shutdown(wait=False, cancel_futures=True)

    def budget_s(self, request: gateway_pb2.CheckRequest, time_remaining: float | None) -> float:
        """Seconds the backends may use for this image."""
        budget = (request.options.budget_ms or self.config.default_budget_ms) / 1000.0
        if time_remaining is not None:
            budget = min(budget, time_remaining - reserve_s(time_remaining))
        if budget <= 0:
            raise DeadlineExceeded("the call's deadline passed before this image could be checked")
        return budget

    async def _validate(self, request: gateway_pb2.CheckRequest) -> None:
        """Once, here, before any backend is called: the request's fields (metadata would
        refuse a bad context anyway, after the synthesis call was paid for), then the image's
        size, format and declared dimensions."""
        check_context(request.context)
        check_id("client_ref", request.client_ref)  # echoed in every response
        check_bytes(request.image.data, self.config.max_message_bytes)
        # InvalidImage / TooLarge; header only. Off the event loop: the upload decides what
        # the header walk costs (Pillow reads JPEG fill bytes one at a time in Python, ~0.25 s
        # for the 1 MiB the structure guard allows), and on the loop every other call and
        # health probe of the gateway waited for it.
        await asyncio.get_running_loop().run_in_executor(
            self._probe_pool, probe, request.image.data, self.config.max_pixels
        )

    async def _call(
        self, backend: Backend, call: Callable[[float], Awaitable], timeout_s: float
    ) -> tuple[object | None, str]:
        """(answer, "") or (None, why it is missing). Raises InvalidImage only."""
        if backend.known_down:
            self.metrics.backend_calls.labels(backend.name, "SKIPPED_DOWN").inc()
            return None, f"down: {backend.down_cause}"
        started = time.perf_counter()
        attributes: dict[str, str | float | bool] = {
            "imagetrust.backend": backend.name,
            "imagetrust.budget_ms": round(timeout_s * 1000),
        }
        with tracing.span(_tracer, f"backend {backend.name}", attributes, tracing.SpanKind.CLIENT) as span:
            try:
                answer = await call(timeout_s)
            except aio.AioRpcError as exc:
                tracing.set_error(span, exc.code().name, exc.details() or "")
                return self._left_out(backend, exc, timeout_s)
        self.metrics.backend_calls.labels(backend.name, "OK").inc()
        self.metrics.backend_seconds.labels(backend.name).observe(time.perf_counter() - started)
        return answer, ""

    def _left_out(self, backend: Backend, exc: aio.AioRpcError, timeout_s: float) -> tuple[None, str]:
        """(None, why) for a failed backend call; raises the error a bad image must be."""
        code = exc.code()
        self.metrics.backend_calls.labels(backend.name, code.name).inc()
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise _passed_on(backend.name, exc) from None
        if code in _SUSPECT_CODES:
            backend.suspect()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            cause = f"no answer within its budget of {timeout_s * 1000:.0f} ms"
        else:
            cause = f"{code.name}: {(exc.details() or '')[:_MAX_CAUSE_CHARS]}"
        log.warning("%s left out: %s", backend.name, cause, extra={"backend": backend.name})
        return None, cause

    def _cap(self, budget_s: float, cap_ms: int) -> float:
        return min(budget_s, cap_ms / 1000.0) if cap_ms else budget_s

    async def check(
        self, request: gateway_pb2.CheckRequest, time_remaining: float | None, request_id: str | None = None
    ) -> gateway_pb2.CheckResponse:
        started = time.monotonic()
        with tracing.span(_tracer, "validate", {"imagetrust.image_bytes": len(request.image.data)}):
            await self._validate(request)
        if time_remaining is not None:
            # The header read may have waited for the probe thread: that time is the caller's.
            time_remaining -= time.monotonic() - started
        budget = self.budget_s(request, time_remaining)
        request_id = request_id or request_id_var.get() or new_request_id()
        metadata = ((REQUEST_ID_HEADER, request_id),)
        backends = self.backends
        calls: dict[str, Awaitable] = {}
        if not request.options.skip_synthesis:
            detect = synthesis_pb2.DetectRequest(image=request.image, want_heatmap=request.options.want_heatmap)
            calls["synthesis"] = self._call(
                backends.synthesis,
                lambda t: backends.synthesis_stub.Detect(detect, timeout=t, metadata=tracing.inject(metadata)),
                self._cap(budget, self.config.synthesis_budget_ms),
            )
        if not request.options.skip_metadata:
            analyze = metadata_pb2.AnalyzeRequest(
                image=request.image, context=request.context, register=request.register
            )
            calls["metadata"] = self._call(
                backends.metadata,
                lambda t: backends.metadata_stub.Analyze(analyze, timeout=t, metadata=tracing.inject(metadata)),
                self._cap(budget, self.config.metadata_budget_ms),
            )
        with tracing.span(_tracer, "fan-out", {"imagetrust.budget_ms": round(budget * 1000)}):
            outcomes = await _gather_or_first_error(calls)
        synthesis = cast("synthesis_pb2.DetectResponse | None", outcomes.get("synthesis", (None, ""))[0])
        metadata_answer = cast("metadata_pb2.AnalyzeResponse | None", outcomes.get("metadata", (None, ""))[0])
        missing = {name: cause for name, (answer, cause) in outcomes.items() if answer is None}

        policy = self.policies.for_platform(request.context.platform)
        verdict = decide(policy, synthesis, metadata_answer, missing)
        self.metrics.decisions.labels(
            common_pb2.Decision.Name(verdict.decision), policy.platform or "default", "true" if missing else "false"
        ).inc()
        response = gateway_pb2.CheckResponse(
            # The stubs type enum fields as the enum's wrapper class; the value is its int.
            request_id=request_id,
            decision=cast("common_pb2.Decision", verdict.decision),
            risk=verdict.risk,
            reasons=verdict.reasons,
            degraded=bool(missing),
            missing=list(missing),
            policy_version=verdict.policy_version,
            client_ref=request.client_ref,
        )
        if synthesis is not None:
            response.synthesis.CopyFrom(synthesis)
            response.model_version = synthesis.model_version
        if metadata_answer is not None:
            response.metadata.CopyFrom(metadata_answer)
        return response


def _passed_on(backend: str, exc: aio.AioRpcError) -> InvalidImage:
    """A backend's INVALID_ARGUMENT as the gateway's own error, keeping the backend's
    ErrorInfo reason, metadata and field violations (plus which backend said it)."""
    rich = status.from_metadata(exc.trailing_metadata())
    info = status.error_info(rich)
    metadata = {**(info.metadata if info is not None else {}), "backend": backend}
    return InvalidImage(
        f"{backend}: {exc.details()}",
        reason=info.reason if info is not None else None,
        metadata=metadata,
        violations=status.violations(rich),
    )


async def _gather_or_first_error(calls: dict[str, Awaitable]) -> dict[str, tuple[object | None, str]]:
    """Runs the calls concurrently; on the first exception cancels the rest and raises it.
    The tasks are cancelled too when the caller goes away (its task is cancelled)."""
    tasks = {name: asyncio.ensure_future(coro) for name, coro in calls.items()}
    try:
        pending = set(tasks.values())
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
        return {name: task.result() for name, task in tasks.items()}
    finally:
        for task in tasks.values():
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                # Both backends can refuse a bad image in the same wait: one error is raised,
                # the other must still be retrieved, or asyncio logs it with a traceback as
                # "Task exception was never retrieved" (an ERROR line per such upload).
                task.exception()
