"""What an ImageTrust error status says beyond its code: the google.rpc.Status details.

Every non-OK status from ImageTrust carries a google.rpc.ErrorInfo (domain "imagetrust")
whose `reason` is a stable code (README, "Errors"), RetryInfo where retrying the same call
can succeed, and BadRequest field violations for invalid request fields:

    try:
        client.check("upload.bin")
    except grpc.RpcError as exc:
        details = error_details(exc)
        if details.reason == "DECOMPRESSION_BOMB": ...
        if details.retry_after_s is not None: ...   # the server says: wait, then retry
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import grpc
from google.rpc import error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"  # the trailer gRPC's rich status travels in


@dataclasses.dataclass(frozen=True)
class ErrorDetails:
    code: grpc.StatusCode
    message: str
    reason: str = ""  # the ErrorInfo reason; "" when the peer sent none (gRPC's own errors)
    domain: str = ""
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    retry_after_s: float | None = None  # RetryInfo: seconds to wait before retrying; None: do not
    field_violations: tuple[tuple[str, str], ...] = ()  # (field path, description)


def rich_status(trailing: Iterable[tuple[str, str | bytes]] | None) -> status_pb2.Status | None:
    """The google.rpc.Status in a call's trailing metadata, or None."""
    for key, value in trailing or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # noqa: BLE001 - a foreign peer's garbage is no details
                return None
    return None


def parse(code: grpc.StatusCode, message: str, status: status_pb2.Status | None) -> ErrorDetails:
    reason = domain = ""
    metadata: dict[str, str] = {}
    retry: float | None = None
    violations: list[tuple[str, str]] = []
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry_info = error_details_pb2.RetryInfo()
            detail.Unpack(retry_info)
            retry = retry_info.retry_delay.ToNanoseconds() / 1e9
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
    return ErrorDetails(code, message, reason, domain, metadata, retry, tuple(violations))


def error_details(exc: grpc.RpcError) -> ErrorDetails:
    """The details of a failed call (sync grpc.RpcError or asyncio AioRpcError)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = (exc.details() if hasattr(exc, "details") else "") or ""
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    return parse(code, message, rich_status(trailing))
