"""ImageTrust servicer: proto <-> domain and per-item error mapping only."""

from __future__ import annotations

from grpc import aio

from imagetrust.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from services.common.errors import ImageTrustError
from services.gateway.checker import Checker


def _item_error(request: gateway_pb2.CheckRequest, exc: ImageTrustError) -> gateway_pb2.CheckResponse:
    return gateway_pb2.CheckResponse(
        client_ref=request.client_ref,
        error=common_pb2.ItemError(code=exc.code.value[0], code_name=exc.code.name, message=exc.message),
    )


class ImageTrustServicer(gateway_pb2_grpc.ImageTrustServicer):
    def __init__(self, checker: Checker) -> None:
        self.checker = checker

    async def Check(self, request: gateway_pb2.CheckRequest, context: aio.ServicerContext):
        return await self.checker.check(request, context.time_remaining())

    async def CheckStream(self, request_iterator, context: aio.ServicerContext):
        async for request in request_iterator:
            try:
                yield await self.checker.check(request, context.time_remaining())
            except ImageTrustError as exc:
                yield _item_error(request, exc)

    async def CheckBatch(self, request: gateway_pb2.CheckBatchRequest, context: aio.ServicerContext):
        responses = []
        for item in request.requests:
            try:
                responses.append(await self.checker.check(item, context.time_remaining()))
            except ImageTrustError as exc:
                responses.append(_item_error(item, exc))
        return gateway_pb2.CheckBatchResponse(responses=responses)
