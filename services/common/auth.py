"""Optional per-client API keys, checked by a server interceptor.

Keys are never stored in clear: the server holds SHA-256 hashes (a file of
"client-name sha256hex" lines, or "client-name=sha256hex" items in the environment) and
compares the hash of the presented key with every stored hash using hmac.compare_digest,
so neither timing nor an early exit tells which key was close. Health and reflection stay
open: Kubernetes probes and grpcurl discovery carry no key.

    python -m services.common.auth hash KEY     # prints the hash to store next to the client name
"""

from __future__ import annotations

import hashlib
import hmac
import pathlib
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping

import grpc
from grpc import aio

from imagetrust.channel import API_KEY_HEADER
from services.common import status
from services.common.errors import API_KEY_INVALID, API_KEY_MISSING
from services.common.interceptors import split_method

# Services callable without a key: probes and API discovery.
EXEMPT_SERVICES = frozenset(
    {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"}
)
_SHA256_HEX_LEN = 64  # characters


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _entry(name: str, digest: str, where: str) -> tuple[str, bytes]:
    name, digest = name.strip(), digest.strip().lower()
    if not name or len(digest) != _SHA256_HEX_LEN or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{where}: expected 'client-name sha256hex' (64 hex digits)")
    return name, bytes.fromhex(digest)


def load_key_hashes(path: str = "", items: Iterable[str] = ()) -> dict[str, bytes]:
    """client name -> SHA-256 digest, from a keys file and/or name=hex items; {} when none."""
    keys: dict[str, bytes] = {}
    if path:
        for n, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, digest = line.partition(" ")
                k, v = _entry(name, digest, f"{path}:{n}")
                keys[k] = v
    for item in items:
        name, _, digest = item.partition("=")
        k, v = _entry(name, digest, f"api key item {name!r}")
        keys[k] = v
    return keys


def client_for(presented: str, keys: Mapping[str, bytes]) -> str | None:
    """The client name the key belongs to, or None. Compares against every key."""
    digest = hashlib.sha256(presented.encode()).digest()
    found = None
    for name, stored in keys.items():
        if hmac.compare_digest(digest, stored):
            found = name
    return found


def _deny(handler: grpc.RpcMethodHandler, message: str, reason: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as handler that ends the call with UNAUTHENTICATED."""
    denied = status.build(grpc.StatusCode.UNAUTHENTICATED, message, reason, {"header": API_KEY_HEADER})

    async def abort(_request, context: aio.ServicerContext):
        await status.abort(context, denied)

    async def abort_stream(_request, context: aio.ServicerContext):
        await status.abort(context, denied)
        yield  # pragma: no cover - makes this an async generator, as streaming handlers are

    ser, deser = handler.response_serializer, handler.request_deserializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(abort, deser, ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(abort_stream, deser, ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(abort, deser, ser)
    return grpc.stream_stream_rpc_method_handler(abort_stream, deser, ser)


class ApiKeyInterceptor(aio.ServerInterceptor):
    """Refuses calls without a valid x-api-key (UNAUTHENTICATED), except exempt services."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise ValueError("ApiKeyInterceptor needs at least one key")
        self.keys = dict(keys)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, _ = split_method(handler_call_details.method)
        if service in EXEMPT_SERVICES:
            return handler
        presented = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == API_KEY_HEADER:
                presented = str(value)
        if not presented:
            return _deny(
                handler, f"this server requires an API key: send it as {API_KEY_HEADER} metadata", API_KEY_MISSING
            )
        if client_for(presented, self.keys) is None:
            return _deny(handler, f"the {API_KEY_HEADER} sent is not a valid key for this server", API_KEY_INVALID)
        return handler


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "hash":
        print("usage: python -m services.common.auth hash KEY", file=sys.stderr)
        return 2
    print(hash_key(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
