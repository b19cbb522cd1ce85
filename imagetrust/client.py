"""Python client SDK for the ImageTrust gateway (sync and asyncio).

    from imagetrust.client import Client
    with Client("localhost:50051") as client:
        verdict = client.check(open("photo.jpg", "rb").read(), seller_id="s-1", listing_id="l-9")
        print(verdict.decision, verdict.risk, [r.code for r in verdict.reasons])

Every call has a deadline (default 10 s). Check is retried by the channel on UNAVAILABLE
only (the call never reached the server, so retrying cannot register a sighting twice).
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import AsyncIterator, Iterable, Iterator

import grpc
from grpc import aio

from imagetrust.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

DEFAULT_TARGET = "localhost:50051"
DEFAULT_TIMEOUT_S = 10.0  # seconds per call
MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # bytes; matches the servers' default limit

_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": "imagetrust.v1.ImageTrust"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)
_OPTIONS = [
    ("grpc.service_config", _SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]

ImageLike = bytes | str | os.PathLike


def _image(image: ImageLike) -> common_pb2.Image:
    if isinstance(image, bytes):
        return common_pb2.Image(data=image)
    path = pathlib.Path(image)
    return common_pb2.Image(data=path.read_bytes(), filename=path.name)


def build_request(
    image: ImageLike,
    *,
    seller_id: str = "",
    listing_id: str = "",
    conversation_id: str = "",
    platform: str = "",
    register: bool = False,
    want_heatmap: bool = False,
    client_ref: str = "",
) -> gateway_pb2.CheckRequest:
    return gateway_pb2.CheckRequest(
        image=_image(image),
        context=common_pb2.Context(
            seller_id=seller_id, listing_id=listing_id, conversation_id=conversation_id, platform=platform
        ),
        register=register,
        options=gateway_pb2.CheckOptions(want_heatmap=want_heatmap),
        client_ref=client_ref,
    )


def _metadata(api_key: str | None, request_id: str | None) -> tuple[tuple[str, str], ...]:
    md = []
    if api_key:
        md.append(("x-api-key", api_key))
    if request_id:
        md.append(("x-request-id", request_id))
    return tuple(md)


class Client:
    """Blocking client. Thread-safe: share one per process."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        credentials: grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.api_key = api_key
        self.channel = (
            grpc.secure_channel(target, credentials, options=_OPTIONS)
            if credentials
            else grpc.insecure_channel(target, options=_OPTIONS)
        )
        self.stub = gateway_pb2_grpc.ImageTrustStub(self.channel)

    def check(self, image: ImageLike, *, timeout: float | None = None, request_id: str | None = None, **fields) -> gateway_pb2.CheckResponse:
        return self.check_request(build_request(image, **fields), timeout=timeout, request_id=request_id)

    def check_request(self, request: gateway_pb2.CheckRequest, *, timeout: float | None = None, request_id: str | None = None) -> gateway_pb2.CheckResponse:
        return self.stub.Check(request, timeout=timeout or self.timeout, metadata=_metadata(self.api_key, request_id))

    def check_stream(self, requests: Iterable[gateway_pb2.CheckRequest], *, timeout: float | None = None) -> Iterator[gateway_pb2.CheckResponse]:
        return self.stub.CheckStream(iter(requests), timeout=timeout, metadata=_metadata(self.api_key, None))

    def check_batch(self, requests: Iterable[gateway_pb2.CheckRequest], *, timeout: float | None = None) -> list[gateway_pb2.CheckResponse]:
        response = self.stub.CheckBatch(
            gateway_pb2.CheckBatchRequest(requests=list(requests)),
            timeout=timeout or self.timeout, metadata=_metadata(self.api_key, None),
        )
        return list(response.responses)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient:
    """asyncio client; create and use it inside one running event loop."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        credentials: grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.api_key = api_key
        self.channel = (
            aio.secure_channel(target, credentials, options=_OPTIONS)
            if credentials
            else aio.insecure_channel(target, options=_OPTIONS)
        )
        self.stub = gateway_pb2_grpc.ImageTrustStub(self.channel)

    async def check(self, image: ImageLike, *, timeout: float | None = None, request_id: str | None = None, **fields) -> gateway_pb2.CheckResponse:
        return await self.check_request(build_request(image, **fields), timeout=timeout, request_id=request_id)

    async def check_request(self, request: gateway_pb2.CheckRequest, *, timeout: float | None = None, request_id: str | None = None) -> gateway_pb2.CheckResponse:
        return await self.stub.Check(request, timeout=timeout or self.timeout, metadata=_metadata(self.api_key, request_id))

    async def check_stream(self, requests: AsyncIterator[gateway_pb2.CheckRequest] | Iterable[gateway_pb2.CheckRequest]) -> AsyncIterator[gateway_pb2.CheckResponse]:
        call = self.stub.CheckStream(requests, metadata=_metadata(self.api_key, None))
        async for response in call:
            yield response

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
