"""The per-call server interceptor: request id, error mapping, metrics, access logs, and (when
tracing is on) the call's server span, its parent taken from the caller's traceparent.

One interceptor does all five so each call is wrapped once (the gateway's latency budget is
a few milliseconds). Servicers raise ImageTrustError subclasses and this maps them to a
status and message; anything unexpected becomes INTERNAL with the request id to quote,
and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio
from opentelemetry import context as otel_context
from opentelemetry import trace

from imagetrust.channel import REQUEST_ID_HEADER
from services.common import status as rich_status
from services.common import tracing
from services.common.errors import INTERNAL_ERROR, REQUEST_MALFORMED, ImageTrustError, InvalidRequest
from services.common.logging import new_request_id, request_id_var
from services.common.metrics import GrpcServerMetrics

log = logging.getLogger("imagetrust.access")
_tracer = tracing.tracer("imagetrust.server")

# Services whose calls are not access-logged: probes every few seconds would drown the log.
_QUIET_SERVICES = frozenset({"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"})


def split_method(full_method: str) -> tuple[str, str]:
    # "/imagetrust.v1.ImageTrust/Check" -> ("imagetrust.v1.ImageTrust", "Check")
    _, service, method = full_method.split("/", 2)
    return service, method


def _incoming_request_id(details: grpc.HandlerCallDetails) -> str:
    for key, value in details.invocation_metadata or ():
        if key == REQUEST_ID_HEADER and value:
            # Bounded: the id ends up in every log line and response.
            return str(value)[:64]
    return new_request_id()


class _Malformed:
    """Stands in for a request whose bytes are not a valid message (bad wire format, a string
    field that is not UTF-8). gRPC's own handling of a deserializer error is UNKNOWN plus an
    ERROR traceback in the log; handing this on lets the call answer INVALID_ARGUMENT."""

    def __init__(self, exc: Exception) -> None:
        self.error = InvalidRequest(f"the request is not a valid message: {exc}", reason=REQUEST_MALFORMED)


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception as exc:  # noqa: BLE001 - DecodeError and whatever a parser raises
            return _Malformed(exc)

    return deserialize


def _checked(request: Any, received: Any = None) -> Any:
    """The request, or for a request stream an async iterator over it that counts each
    message on `received` (grpc_server_msg_received_total); raises the InvalidRequest of a
    malformed message where the handler reads it."""
    if isinstance(request, _Malformed):
        raise request.error
    if not hasattr(request, "__aiter__"):
        return request

    async def messages() -> AsyncIterator[Any]:
        async for message in request:
            if received is not None:
                received.inc()
            if isinstance(message, _Malformed):
                raise message.error
            yield message

    return messages()


def _code_of(context: aio.ServicerContext) -> grpc.StatusCode:
    code = context.code()
    if code is None:
        return grpc.StatusCode.OK
    if isinstance(code, grpc.StatusCode):
        return code
    for status in grpc.StatusCode:  # the aio context may report the numeric code
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN


class ServerInterceptor(aio.ServerInterceptor):
    def __init__(self, metrics: GrpcServerMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, method = split_method(handler_call_details.method)
        call = _Call(self._metrics, service, method, handler_call_details)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                call.unary(handler.unary_unary, "unary"),
                _tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                call.streaming(handler.unary_stream, "server_stream"),
                _tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                call.unary(handler.stream_unary, "client_stream"),
                _tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            call.streaming(handler.stream_stream, "bidi_stream"),
            _tolerant(handler.request_deserializer),
            handler.response_serializer,
        )


class _Call:
    """Bookkeeping for one method's calls; the wrappers below run once per call."""

    def __init__(self, metrics: GrpcServerMetrics, service: str, method: str, details: grpc.HandlerCallDetails):
        self.metrics = metrics
        self.service = service
        self.method = method
        self.details = details
        self.quiet = service in _QUIET_SERVICES

    def _received(self, grpc_type: str) -> Any:
        return self.metrics.msg_received.labels(grpc_type, self.service, self.method)

    def _begin(self, grpc_type: str) -> tuple[Any, float, tuple[trace.Span, object] | None]:
        request_id = _incoming_request_id(self.details)
        token = request_id_var.set(request_id)
        self.metrics.started.labels(grpc_type, self.service, self.method).inc()
        self.metrics.in_flight.labels(self.service, self.method).inc()
        traced = None
        if tracing.enabled() and not self.quiet:
            span = _tracer.start_span(
                f"{self.service}/{self.method}",
                context=tracing.extract(self.details.invocation_metadata),
                kind=trace.SpanKind.SERVER,
                attributes={
                    "rpc.system": "grpc",
                    "rpc.service": self.service,
                    "rpc.method": self.method,
                    "imagetrust.request_id": request_id,
                },
            )
            traced = (span, otel_context.attach(trace.set_span_in_context(span)))
        return token, time.perf_counter(), traced

    def _end(
        self,
        grpc_type: str,
        begun: tuple[Any, float, tuple[trace.Span, object] | None],
        code: grpc.StatusCode,
        detail: str = "",
    ) -> None:
        token, start, traced = begun
        elapsed = time.perf_counter() - start
        self.metrics.in_flight.labels(self.service, self.method).dec()
        self.metrics.handled.labels(grpc_type, self.service, self.method, code.name).inc()
        self.metrics.handling_seconds.labels(grpc_type, self.service, self.method).observe(elapsed)
        if not self.quiet:
            log.info(  # inside the span: the access line carries the call's trace_id
                "%s/%s %s",
                self.service,
                self.method,
                code.name,
                extra={"grpc_code": code.name, "duration_ms": round(elapsed * 1000, 2), "detail": detail},
            )
        if traced is not None:
            span, context_token = traced
            tracing.set_error(span, code.name, detail)
            span.end()
            otel_context.detach(context_token)  # type: ignore[arg-type]
        request_id_var.reset(token)

    async def _map_error(self, exc: BaseException, context: aio.ServicerContext) -> None:
        """Aborts the call with the status exc maps to, its google.rpc.Status details in the
        trailers (always raises)."""
        request_id = request_id_var.get()
        if isinstance(exc, ImageTrustError):
            await rich_status.abort(context, rich_status.of_error(exc, request_id))
        log.exception("unhandled error in %s/%s", self.service, self.method)
        await rich_status.abort(
            context,
            rich_status.build(
                grpc.StatusCode.INTERNAL,
                f"internal error; quote request id {request_id}",
                INTERNAL_ERROR,
                {"request_id": request_id},
            ),
        )

    def unary(self, behavior: Callable[..., Awaitable[Any]], grpc_type: str) -> Callable[..., Awaitable[Any]]:
        async def wrapper(request: Any, context: aio.ServicerContext) -> Any:
            begun = self._begin(grpc_type)
            code, detail = grpc.StatusCode.OK, ""
            try:
                response = await behavior(_checked(request, self._received(grpc_type)), context)
                code = _code_of(context)
                return response
            except aio.AbortError:
                code, detail = _code_of(context), context.details() or ""
                raise
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status, never a crash
                code = exc.code if isinstance(exc, ImageTrustError) else grpc.StatusCode.INTERNAL
                detail = str(exc)
                await self._map_error(exc, context)
            finally:
                self._end(grpc_type, begun, code, detail)

        return wrapper

    def streaming(self, behavior: Callable[..., Any], grpc_type: str) -> Callable[..., Awaitable[None]]:
        sent = self.metrics.msg_sent.labels(grpc_type, self.service, self.method)

        # A coroutine that writes each response itself, not an async generator that gRPC
        # drains: when a client goes away while a write waits on flow control (a client that
        # stopped reading, then cancelled), gRPC abandons a generator suspended at its yield.
        # Python then closes it later from another task: the call was counted OK, its
        # request-id token could not be reset there (an ERROR traceback per such stream), and
        # the handler's own clean-up (the stream window's tasks) waited for garbage
        # collection. Written here, every end runs in the call's own task.
        async def wrapper(request: Any, context: aio.ServicerContext) -> None:
            begun = self._begin(grpc_type)
            code, detail = grpc.StatusCode.OK, ""
            result = None
            try:
                result = behavior(_checked(request, self._received(grpc_type)), context)
                if hasattr(result, "__aiter__"):
                    async for response in result:
                        try:
                            await context.write(response)
                        except aio.InternalError:
                            # The write failed in gRPC core: the client cancelled or the
                            # connection dropped. Ending as cancelled lets gRPC finish the call
                            # quietly (it logs a failed write with a traceback otherwise).
                            raise asyncio.CancelledError() from None
                        sent.inc()
                else:  # a coroutine that writes with context.write()
                    await result
                code = _code_of(context)
            except aio.AbortError:
                code, detail = _code_of(context), context.details() or ""
                raise
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:  # noqa: BLE001
                code = exc.code if isinstance(exc, ImageTrustError) else grpc.StatusCode.INTERNAL
                detail = str(exc)
                await self._map_error(exc, context)
            finally:
                try:
                    if result is not None and hasattr(result, "aclose"):
                        await result.aclose()  # a handler left mid-stream cleans up now, here
                finally:
                    self._end(grpc_type, begun, code, detail)

        return wrapper
