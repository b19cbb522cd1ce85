"""Python client SDK for the ImageTrust gateway (sync and asyncio).

    from imagetrust.client import Client
    with Client("localhost:50051") as client:
        verdict = client.check("photo.jpg", seller_id="s-1", listing_id="l-9")  # a path or bytes
        print(verdict.decision, verdict.risk, [r.code for r in verdict.reasons])

Production (TLS, mTLS, an API key, settings from the environment):

    client = Client.from_env()   # IMAGETRUST_GATEWAY, IMAGETRUST_API_KEY, IMAGETRUST_CLIENT_TLS_CA, ...

Every call has a deadline (default 10 s). Calls are retried by the channel on UNAVAILABLE
only (the gateway was not reached or went away), up to `max_attempts` in total and within
the call's deadline; a check is safe to repeat (registering the same image for the same
listing twice records one sighting). Within an OpenTelemetry span, calls carry its W3C trace
context (traceparent), so the services' spans join the caller's trace. A failed Check or
CheckBatch whose status carries a google.rpc.RetryInfo (queue full, starting, draining) is
tried again after the delay it names (at most MAX_RETRY_DELAY_S), up to `max_attempts`
rounds and never past the call's deadline (an UNAVAILABLE round is itself up to
`max_attempts` quick channel tries); a status without RetryInfo (a bad image, a
decompression bomb) is raised at once. `error_details(exc)` (imagetrust.errors) gives any
failure's reason, metadata and retry delay. docs/gateway.md documents the SDK for platform
services.
"""

from __future__ import annotations

import asyncio
import math
import os
import pathlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import grpc
from grpc import aio
from opentelemetry import propagate

from imagetrust import channel
from imagetrust.channel import (  # noqa: F401 - re-exported: names of the SDK's API
    API_KEY_HEADER,
    MAX_MESSAGE_BYTES,
    REQUEST_ID_HEADER,
    channel_credentials,
)
from imagetrust.errors import ErrorDetails, error_details
from imagetrust.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

__all__ = ["AsyncClient", "Client", "ErrorDetails", "build_request", "error_details", "settings_from_env"]

DEFAULT_TARGET = "localhost:50051"
DEFAULT_TIMEOUT_S = 10.0  # seconds per call
DEFAULT_MAX_ATTEMPTS = 3  # calls per check, first try included (UNAVAILABLE only)
GATEWAY_SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["ImageTrust"].full_name
# Seconds between retries of a call that did not reach the gateway: a first retry soon (a
# pod going away), then backing off up to half a second.
RETRY_INITIAL_BACKOFF_S = 0.05
RETRY_MAX_BACKOFF_S = 0.5
# Seconds: the longest RetryInfo delay the SDK waits for on its own; a server asking for
# more is passed on to the caller (it knows whether the upload can wait that long).
MAX_RETRY_DELAY_S = 5.0

T = TypeVar("T")


def _retry_delay(exc: grpc.RpcError, attempt: int, max_attempts: int, deadline: float) -> float | None:
    """Seconds to wait before trying again, or None to raise exc now: only a status with
    RetryInfo is retried, within max_attempts calls and before the deadline (monotonic)."""
    if attempt + 1 >= max_attempts:
        return None
    delay = error_details(exc).retry_after_s
    if delay is None or delay > MAX_RETRY_DELAY_S or time.monotonic() + delay >= deadline:
        return None
    return delay


def service_config(max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> str:
    """The SDK channel's service config: round_robin, retries on UNAVAILABLE (imagetrust.channel)."""
    return channel.service_config(
        (GATEWAY_SERVICE,), max_attempts, initial_backoff_s=RETRY_INITIAL_BACKOFF_S, max_backoff_s=RETRY_MAX_BACKOFF_S
    )


def channel_options(max_attempts: int = DEFAULT_MAX_ATTEMPTS, server_name: str = "") -> list[tuple[str, Any]]:
    return channel.channel_options(service_config(max_attempts), retries=max_attempts > 1, server_name=server_name)


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
    budget_ms: int = 0,
    skip_synthesis: bool = False,
    skip_metadata: bool = False,
) -> gateway_pb2.CheckRequest:
    return gateway_pb2.CheckRequest(
        image=_image(image),
        context=common_pb2.Context(
            seller_id=seller_id, listing_id=listing_id, conversation_id=conversation_id, platform=platform
        ),
        register=register,
        options=gateway_pb2.CheckOptions(
            want_heatmap=want_heatmap, budget_ms=budget_ms, skip_synthesis=skip_synthesis, skip_metadata=skip_metadata
        ),
        client_ref=client_ref,
    )


def _metadata(api_key: str | None, request_id: str | None) -> tuple[tuple[str, str], ...]:
    md = []
    if api_key:
        md.append((API_KEY_HEADER, api_key))
    if request_id:
        md.append((REQUEST_ID_HEADER, request_id))
    # W3C trace context of the caller's current OpenTelemetry span (traceparent, tracestate),
    # so the gateway's and the backends' spans join the caller's trace; nothing without one.
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    md.extend(carrier.items())
    return tuple(md)


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict:
    """Client keyword arguments from IMAGETRUST_GATEWAY, IMAGETRUST_API_KEY and
    IMAGETRUST_CLIENT_{TLS_CA,TLS_CERT,TLS_KEY,TLS_SERVER_NAME,TIMEOUT_S} (names distinct
    from the servers' own IMAGETRUST_TLS_* so one environment can hold both)."""
    env = os.environ if environ is None else environ
    settings: dict = {
        "target": env.get("IMAGETRUST_GATEWAY", DEFAULT_TARGET),
        "api_key": env.get("IMAGETRUST_API_KEY") or None,
        "tls_ca": env.get("IMAGETRUST_CLIENT_TLS_CA") or None,
        "tls_cert": env.get("IMAGETRUST_CLIENT_TLS_CERT") or None,
        "tls_key": env.get("IMAGETRUST_CLIENT_TLS_KEY") or None,
        "tls_server_name": env.get("IMAGETRUST_CLIENT_TLS_SERVER_NAME", ""),
    }
    raw_timeout = env.get("IMAGETRUST_CLIENT_TIMEOUT_S")
    if raw_timeout:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            timeout = math.nan
        # Name the variable: a bare float() error does not say which setting is wrong, and a
        # default deadline of 0 s or less fails every call.
        if not 0 < timeout < math.inf:
            raise ValueError(f"IMAGETRUST_CLIENT_TIMEOUT_S: expected seconds above 0, got {raw_timeout!r}")
        settings["timeout"] = timeout
    return settings


class _Base:
    """Settings shared by the sync and asyncio clients."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        credentials: grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
        tls_ca: str | bytes | os.PathLike | None = None,
        tls_cert: str | bytes | os.PathLike | None = None,
        tls_key: str | bytes | os.PathLike | None = None,
        tls_server_name: str = "",
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        """target: "host:port", "dns:///name:port" (balanced over its addresses) or any gRPC
        target. timeout: default deadline per call, seconds. credentials, or tls_ca (+
        tls_cert/tls_key for mTLS) as PEM paths or bytes: TLS; none of them: plaintext.
        api_key: sent as x-api-key on every call. max_attempts: tries per call on UNAVAILABLE."""
        if credentials is None:
            credentials = channel_credentials(tls_ca, tls_cert, tls_key)
        self.target = target
        self.timeout = timeout
        self.api_key = api_key
        self._credentials = credentials
        self._options = channel_options(max_attempts, tls_server_name)
        self.max_attempts = max(1, max_attempts)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides):
        """A client configured from the environment (settings_from_env); overrides win."""
        return cls(**{**settings_from_env(environ), **overrides})

    def _timeout(self, timeout: float | None) -> float:
        # `timeout or self.timeout` turned an explicit 0 (an already spent deadline, e.g. a
        # caller passing on what is left of its own) into the 10 s default.
        return self.timeout if timeout is None else timeout


class Client(_Base):
    """Blocking client. Thread-safe: share one per process."""

    def __init__(self, target: str = DEFAULT_TARGET, **kwargs) -> None:
        super().__init__(target, **kwargs)
        self.channel = (
            grpc.secure_channel(target, self._credentials, options=self._options)
            if self._credentials
            else grpc.insecure_channel(target, options=self._options)
        )
        self.stub = gateway_pb2_grpc.ImageTrustStub(self.channel)

    def check(
        self, image: ImageLike, *, timeout: float | None = None, request_id: str | None = None, **fields
    ) -> gateway_pb2.CheckResponse:
        """Checks one image (bytes or a path); fields are build_request's keyword arguments."""
        return self.check_request(build_request(image, **fields), timeout=timeout, request_id=request_id)

    def _with_retry(self, call: Callable[[float], T], timeout: float | None) -> T:
        deadline = time.monotonic() + self._timeout(timeout)
        attempt = 0
        while True:
            try:
                return call(max(0.0, deadline - time.monotonic()))
            except grpc.RpcError as exc:
                delay = _retry_delay(exc, attempt, self.max_attempts, deadline)
                if delay is None:
                    raise
            time.sleep(delay)
            attempt += 1

    def check_request(
        self, request: gateway_pb2.CheckRequest, *, timeout: float | None = None, request_id: str | None = None
    ) -> gateway_pb2.CheckResponse:
        metadata = _metadata(self.api_key, request_id)
        return self._with_retry(lambda t: self.stub.Check(request, timeout=t, metadata=metadata), timeout)

    def check_stream(
        self, requests: Iterable[gateway_pb2.CheckRequest], *, timeout: float | None = None
    ) -> Iterator[gateway_pb2.CheckResponse]:
        """One response per request, in order; a bad image gives a response with `error` set.
        No deadline by default: a chat stream lives as long as the conversation."""
        return self.stub.CheckStream(iter(requests), timeout=timeout, metadata=_metadata(self.api_key, None))

    def check_batch(
        self, requests: Iterable[gateway_pb2.CheckRequest], *, timeout: float | None = None
    ) -> list[gateway_pb2.CheckResponse]:
        """One response per request, in order, per-item errors; at most the server's
        batch_max_items per call (default 256)."""
        batch = gateway_pb2.CheckBatchRequest(requests=list(requests))
        metadata = _metadata(self.api_key, None)
        response = self._with_retry(lambda t: self.stub.CheckBatch(batch, timeout=t, metadata=metadata), timeout)
        return list(response.responses)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient(_Base):
    """asyncio client; create and use it inside one running event loop."""

    def __init__(self, target: str = DEFAULT_TARGET, **kwargs) -> None:
        super().__init__(target, **kwargs)
        self.channel = (
            aio.secure_channel(target, self._credentials, options=self._options)
            if self._credentials
            else aio.insecure_channel(target, options=self._options)
        )
        self.stub = gateway_pb2_grpc.ImageTrustStub(self.channel)

    async def check(
        self, image: ImageLike, *, timeout: float | None = None, request_id: str | None = None, **fields
    ) -> gateway_pb2.CheckResponse:
        return await self.check_request(build_request(image, **fields), timeout=timeout, request_id=request_id)

    async def _with_retry(self, call: Callable[[float], Awaitable[T]], timeout: float | None) -> T:
        deadline = time.monotonic() + self._timeout(timeout)
        attempt = 0
        while True:
            try:
                return await call(max(0.0, deadline - time.monotonic()))
            except grpc.RpcError as exc:
                delay = _retry_delay(exc, attempt, self.max_attempts, deadline)
                if delay is None:
                    raise
            await asyncio.sleep(delay)
            attempt += 1

    async def check_request(
        self, request: gateway_pb2.CheckRequest, *, timeout: float | None = None, request_id: str | None = None
    ) -> gateway_pb2.CheckResponse:
        metadata = _metadata(self.api_key, request_id)
        return await self._with_retry(lambda t: self.stub.Check(request, timeout=t, metadata=metadata), timeout)

    async def check_stream(
        self,
        requests: AsyncIterator[gateway_pb2.CheckRequest] | Iterable[gateway_pb2.CheckRequest],
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[gateway_pb2.CheckResponse]:
        call = self.stub.CheckStream(requests, timeout=timeout, metadata=_metadata(self.api_key, None))
        async for response in call:
            yield response

    async def check_batch(
        self, requests: Iterable[gateway_pb2.CheckRequest], *, timeout: float | None = None
    ) -> list[gateway_pb2.CheckResponse]:
        batch = gateway_pb2.CheckBatchRequest(requests=list(requests))
        metadata = _metadata(self.api_key, None)
        response = await self._with_retry(lambda t: self.stub.CheckBatch(batch, timeout=t, metadata=metadata), timeout)
        return list(response.responses)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
