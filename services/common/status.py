"""google.rpc.Status details on every non-OK status: ErrorInfo, RetryInfo, BadRequest.

grpcurl, grpc-status readers in every language and our SDK read them from the
`grpc-status-details-bin` trailer; the status code and message stay as before, so callers
that only read those see no change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc import aio
from grpc_status import rpc_status

from imagetrust.errors import parse, rich_status
from services.common.errors import DOMAIN, ImageTrustError


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def build(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata: Mapping[str, str] | None = None,
    retry_after_s: float | None = None,
    violations: Iterable[tuple[str, str]] = (),
) -> status_pb2.Status:
    """A google.rpc.Status with an ErrorInfo, plus RetryInfo and BadRequest when given."""
    status = status_pb2.Status(code=code.value[0], message=message)
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=dict(metadata or {}))
    status.details.append(_pack(info))
    if retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_after_s * 1e9))
        status.details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    field_violations = [
        error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
        for field, description in violations
    ]
    if field_violations:
        status.details.append(_pack(error_details_pb2.BadRequest(field_violations=field_violations)))
    return status


def of_error(exc: ImageTrustError, request_id: str = "") -> status_pb2.Status:
    metadata = dict(exc.metadata)
    if request_id:
        metadata.setdefault("request_id", request_id)
    return build(exc.code, exc.message, exc.reason, metadata, exc.retry_after_s, exc.violations)


async def abort(context: aio.ServicerContext, status: status_pb2.Status) -> None:
    """Ends the call with this status and its details (always raises).

    No grpc-retry-pushback-ms trailer: a channel told to wait past the call's deadline
    (a 2 s RetryInfo against a 0.5 s budget) ends in a bare DEADLINE_EXCEEDED, losing these
    details; the gateway's backend calls would also wait out their whole budget."""
    rich = rpc_status.to_status(status)
    await context.abort(rich.code, rich.details, trailing_metadata=rich.trailing_metadata)


def from_metadata(trailing: Iterable[tuple[str, str | bytes]] | None) -> status_pb2.Status | None:
    """The google.rpc.Status a call's trailing metadata carries, or None."""
    return rich_status(trailing)


def error_info(status: status_pb2.Status | None) -> error_details_pb2.ErrorInfo | None:
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def violations(status: status_pb2.Status | None) -> list[tuple[str, str]]:
    return list(parse(grpc.StatusCode.UNKNOWN, "", status).field_violations)
