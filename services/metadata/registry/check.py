"""The registry step of an analysis: fingerprint the upload, then look it up (and register)."""

from __future__ import annotations

import dataclasses
import hashlib
import time

from services.common import tracing
from services.common.errors import InvalidImage
from services.metadata import fingerprints
from services.metadata.registry.base import Registry
from services.metadata.registry.metrics import RegistryMetrics
from services.metadata.registry.model import LookupResult, Sighting

_tracer = tracing.tracer("imagetrust.metadata.registry")

@dataclasses.dataclass(frozen=True)
class RegistryCheck:
    fingerprints: fingerprints.Fingerprints | None  # None: the pixels could not be decoded
    sha256: bytes
    result: LookupResult


def run(
    data: bytes, sighting: Sighting, register: bool, registry: Registry | None, max_pixels: int,
    sha256: bytes | None = None, metrics: RegistryMetrics | None = None,
) -> RegistryCheck:
    """sha256: the bytes' digest when the analysis already computed it."""
    sha = sha256 if sha256 is not None else hashlib.sha256(data).digest()
    backend = registry.backend if registry is not None else ""
    try:
        with tracing.span(_tracer, "fingerprint"):
            fp = fingerprints.compute(data, max_pixels, sha256=sha)
    except InvalidImage as exc:
        # A file whose header parses but whose pixels do not (truncated, corrupt) still gets
        # its metadata analysis; it just cannot be matched on content.
        result = LookupResult(backend, available=False, error=f"cannot fingerprint: {exc}")
        if metrics is not None:
            metrics.observe(result, None, fingerprinted=False)
        return RegistryCheck(None, sha, result)
    if registry is None:
        return RegistryCheck(fp, sha, LookupResult("", available=False, error="registry not configured"))
    started = time.perf_counter()
    with tracing.span(_tracer, "registry lookup", {"imagetrust.registry_backend": backend}):
        result = registry.lookup(fp, sighting, register)
    if metrics is not None:
        metrics.observe(result, time.perf_counter() - started, fingerprinted=True)
    return RegistryCheck(fp, sha, result)
