"""OpenTelemetry tracing: W3C trace context in, spans around the expensive steps, OTLP out.

Off unless the standard OpenTelemetry variables ask for it: OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set (and neither OTEL_SDK_DISABLED=true nor
OTEL_TRACES_EXPORTER=none). Then every service exports its spans over OTLP/gRPC with a
batching processor; the exporter reads the other OTEL_EXPORTER_OTLP_* variables (headers,
TLS, timeout) and the SDK OTEL_TRACES_SAMPLER / OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME.
Off, `enabled()` is False and the interceptor, the gateway and the batcher skip every
tracing call: the cost is one boolean test per call (bench/bench_tracing.py measures it).

Trace context travels as the `traceparent` / `tracestate` gRPC metadata (W3C Trace Context),
client -> gateway -> synthesis and metadata; log lines of a traced call carry its
trace_id and span_id (services/common/logging.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

log = logging.getLogger("imagetrust.tracing")

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_enabled = False


def enabled() -> bool:
    return _enabled


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for span export (the rule in the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(env.get(name, "").strip() for name in _ENDPOINT_VARS)


def configure(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Sets up export for this process when the environment asks for it; True if it did.
    Called once at start-up, next to logging.configure()."""
    if not wanted(environ):
        return False
    # Imported only here: the SDK and the exporter cost start-up time nobody needs when off.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    env = os.environ if environ is None else environ
    # OTEL_SERVICE_NAME wins where set (Resource.create reads it); else the service's name.
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"imagetrust-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    enable(provider)
    log.info("tracing on: exporting spans over OTLP", extra={"service": service})
    return True


def enable(provider: trace.TracerProvider) -> None:
    """Turns tracing on in this process with `provider` (configure() does it from the
    environment; benchmarks and embedders pass their own)."""
    global _enabled
    trace.set_tracer_provider(provider)
    _enabled = True


def shutdown() -> None:
    """Flushes and stops export (at process exit; spans still queued are sent)."""
    provider = trace.get_tracer_provider()
    if _enabled and hasattr(provider, "shutdown"):
        provider.shutdown()


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def extract(metadata: Iterable[tuple[str, str | bytes]] | None) -> otel_context.Context:
    """The caller's trace context from gRPC invocation metadata."""
    carrier = {key: value for key, value in metadata or () if isinstance(value, str)}
    return propagate.extract(carrier)


def inject(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """metadata plus the current trace context (traceparent, tracestate), when tracing is on."""
    if not _enabled:
        return metadata
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return metadata + tuple(carrier.items())


@contextlib.contextmanager
def span(
    tracer_: trace.Tracer,
    name: str,
    attributes: Mapping[str, str | float | bool] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span | None]:
    """A current span around a step when tracing is on (nothing at all when off). An
    exception marks it as an error and is re-raised."""
    if not _enabled:
        yield None
        return
    with tracer_.start_as_current_span(name, kind=kind, attributes=dict(attributes or {})) as current:
        yield current


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) as 32 and 16 hex digits, or None outside a sampled-or-not span."""
    if not _enabled:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def set_error(current: Span | None, code_name: str, message: str = "") -> None:
    if current is not None:
        current.set_attribute("rpc.grpc.status_code_name", code_name)
        if code_name != "OK":
            current.set_status(Status(StatusCode.ERROR, message[:200]))


__all__ = [
    "SpanKind",
    "configure",
    "current_ids",
    "enable",
    "enabled",
    "extract",
    "inject",
    "set_error",
    "shutdown",
    "span",
    "tracer",
    "wanted",
]
