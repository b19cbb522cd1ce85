"""One exception hierarchy for domain errors, each carrying the gRPC status it maps to.

Domain code raises these; the shared interceptor turns them into a status and message, so
servicers never build statuses by hand and every service answers the same way.
"""

from __future__ import annotations

import grpc


class ImageTrustError(Exception):
    """Base of all errors a caller should see with a specific status."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImage(ImageTrustError):
    """Empty, not an image, truncated, or a format we do not support."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class InvalidRequest(ImageTrustError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class TooLarge(ImageTrustError):
    """Over a byte or pixel limit (including decompression bombs)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Overloaded(ImageTrustError):
    """A bounded queue is full: the caller should back off and retry."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(ImageTrustError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotReady(ImageTrustError):
    """Starting up, shutting down, or a dependency is unavailable."""

    code = grpc.StatusCode.UNAVAILABLE


class PermissionDenied(ImageTrustError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ImageTrustError):
    code = grpc.StatusCode.UNAUTHENTICATED
