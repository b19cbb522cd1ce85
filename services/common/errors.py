"""One exception hierarchy for domain errors, each carrying the gRPC status it maps to.

Domain code raises these; the shared interceptor turns them into a status, a message and
google.rpc.Status details (services/common/status.py), so servicers never build statuses by
hand and every service answers the same way.

Each error has a stable `reason` (the ErrorInfo reason, domain "imagetrust"): the codes are
only ever added, never renamed, and are listed with their status in README's Errors table.
`metadata` holds the values that triggered the error (limits, sizes, the field at fault);
`retry_after_s` is set only where retrying the same call can succeed, and becomes RetryInfo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc

DOMAIN = "imagetrust"  # google.rpc.ErrorInfo.domain of every ImageTrust error

# Stable ErrorInfo reasons (README, "Errors"). UPPER_SNAKE_CASE as google.rpc asks.
IMAGE_EMPTY = "IMAGE_EMPTY"
IMAGE_UNSUPPORTED_FORMAT = "IMAGE_UNSUPPORTED_FORMAT"
IMAGE_UNDECODABLE = "IMAGE_UNDECODABLE"
DECOMPRESSION_BOMB = "DECOMPRESSION_BOMB"
MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
REQUEST_MALFORMED = "REQUEST_MALFORMED"
FIELD_INVALID = "FIELD_INVALID"
BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
QUEUE_FULL = "QUEUE_FULL"
IMAGE_EXCEEDS_QUEUE = "IMAGE_EXCEEDS_QUEUE"
BACKEND_STARTING = "BACKEND_STARTING"
DRAINING = "DRAINING"
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
API_KEY_MISSING = "API_KEY_MISSING"
API_KEY_INVALID = "API_KEY_INVALID"
INTERNAL_ERROR = "INTERNAL_ERROR"

# Seconds a caller is told to wait (RetryInfo) before the same call can succeed.
# Queue full: one forward pass of a full batch frees the queue's head; passes take tens of
# ms on a GPU to a few hundred on a CPU, so 0.25 s is about one pass on the slower side.
QUEUE_FULL_RETRY_S = 0.25
# Starting: loading and warming the model takes seconds; probing faster only adds load.
STARTING_RETRY_S = 2.0
# Draining: the pod is going away; a new call is balanced to another pod at once.
DRAINING_RETRY_S = 0.1


class ImageTrustError(Exception):
    """Base of all errors a caller should see with a specific status."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = INTERNAL_ERROR
    retry_after_s: float | None = None  # None: retrying the same call cannot help

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, object] | None = None,
        retry_after_s: float | None = None,
        violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        """violations: (field path, description) pairs, sent as google.rpc.BadRequest."""
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = {k: str(v) for k, v in (metadata or {}).items()}
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s
        self.violations = tuple(violations)


class InvalidImage(ImageTrustError):
    """Empty, not an image, truncated, or a format we do not support."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = IMAGE_UNDECODABLE


class InvalidRequest(ImageTrustError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = FIELD_INVALID


class TooLarge(ImageTrustError):
    """Over a byte or pixel limit (including decompression bombs)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = DECOMPRESSION_BOMB


class Overloaded(ImageTrustError):
    """A bounded queue is full: the caller should back off and retry."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = QUEUE_FULL
    retry_after_s = QUEUE_FULL_RETRY_S


class DeadlineExceeded(ImageTrustError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = DEADLINE_EXCEEDED


class NotReady(ImageTrustError):
    """Starting up, shutting down, or a dependency is unavailable."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = BACKEND_STARTING
    retry_after_s = STARTING_RETRY_S


class PermissionDenied(ImageTrustError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"  # raised by no service today; documented when one does


class Unauthenticated(ImageTrustError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = API_KEY_MISSING
