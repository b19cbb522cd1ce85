"""ImageTrust servicer: proto <-> domain and per-item error mapping only."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc
from grpc import aio

from imagetrust.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from services.common.errors import BATCH_TOO_LARGE, INTERNAL_ERROR, ImageTrustError, InvalidRequest
from services.common.logging import new_request_id, request_id_var
from services.gateway.checker import Checker
from services.gateway.config import GatewayConfig
from services.gateway.ordered import ordered_map

log = logging.getLogger("imagetrust.gateway")

# Seconds of a batch call's deadline kept to assemble and send the whole batch's response:
# items still unchecked by then answer DEADLINE_EXCEEDED instead of the call failing.
BATCH_RESERVE_S = 0.05


def _item_error(
    request: gateway_pb2.CheckRequest, request_id: str, code: grpc.StatusCode, message: str, reason: str
) -> gateway_pb2.CheckResponse:
    return gateway_pb2.CheckResponse(
        request_id=request_id,
        client_ref=request.client_ref,
        error=common_pb2.ItemError(code=code.value[0], code_name=code.name, message=message, reason=reason),
    )


class ImageTrustServicer(gateway_pb2_grpc.ImageTrustServicer):
    def __init__(self, checker: Checker, config: GatewayConfig) -> None:
        self.checker = checker
        self.config = config

    async def _check_item(
        self, index: int, request: gateway_pb2.CheckRequest, time_remaining: Callable[[], float | None]
    ) -> gateway_pb2.CheckResponse:
        """One image of a stream or batch: a verdict, or a response with `error` set."""
        # Each item gets its own id, derived from the call's, so its backend calls and log
        # lines can be told apart and still traced to the call.
        request_id = f"{request_id_var.get() or new_request_id()}.{index}"
        try:
            return await self.checker.check(request, time_remaining(), request_id=request_id)
        except ImageTrustError as exc:
            return _item_error(request, request_id, exc.code, exc.message, exc.reason)
        except Exception:
            log.exception("unhandled error checking item %d", index)
            return _item_error(
                request,
                request_id,
                grpc.StatusCode.INTERNAL,
                f"internal error; quote request id {request_id}",
                INTERNAL_ERROR,
            )

    async def Check(self, request: gateway_pb2.CheckRequest, context: aio.ServicerContext):
        return await self.checker.check(request, context.time_remaining())

    async def CheckStream(self, request_iterator, context: aio.ServicerContext):
        async for response in ordered_map(
            request_iterator, lambda i, r: self._check_item(i, r, context.time_remaining), self.config.stream_window
        ):
            yield response

    async def CheckBatch(self, request: gateway_pb2.CheckBatchRequest, context: aio.ServicerContext):
        count = len(request.requests)
        if count > self.config.batch_max_items:
            raise InvalidRequest(
                f"batch has {count} images; the limit is {self.config.batch_max_items} per call: "
                "split it into several CheckBatch calls",
                reason=BATCH_TOO_LARGE,
                metadata={"items": count, "max_items": self.config.batch_max_items},
                violations=[("requests", f"{count} items; at most {self.config.batch_max_items}")],
            )
        slots = asyncio.Semaphore(self.config.batch_concurrency)
        remaining = context.time_remaining()
        end = None if remaining is None else time.monotonic() + remaining - BATCH_RESERVE_S

        def time_remaining() -> float | None:
            return None if end is None else end - time.monotonic()

        async def bounded(index: int, item: gateway_pb2.CheckRequest) -> gateway_pb2.CheckResponse:
            async with slots:
                return await self._check_item(index, item, time_remaining)

        responses = await asyncio.gather(*(bounded(i, item) for i, item in enumerate(request.requests)))
        return gateway_pb2.CheckBatchResponse(responses=responses)
