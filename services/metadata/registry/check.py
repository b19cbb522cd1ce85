"""The registry step of an analysis: fingerprint the upload, then look it up (and register)."""

from __future__ import annotations

import dataclasses
import hashlib
import time

from services.common import tracing
from services.common.errors import InvalidImage
from services.metadata import fingerprints
from services.metadata.decoded import DecodedUpload
from services.metadata.registry.base import Registry
from services.metadata.registry.metrics import RegistryMetrics
from services.metadata.registry.model import LookupResult, MatchKind, Sighting, findings, rank

_tracer = tracing.tracer("imagetrust.metadata.registry")


@dataclasses.dataclass(frozen=True)
class RegistryCheck:
    fingerprints: fingerprints.Fingerprints | None  # None: the pixels could not be decoded
    sha256: bytes
    result: LookupResult


def run(
    data: bytes,
    sighting: Sighting,
    register: bool,
    registry: Registry | None,
    max_pixels: int,
    sha256: bytes | None = None,
    metrics: RegistryMetrics | None = None,
    *,
    upload: DecodedUpload | None = None,
    legacy_pixel_key: bool = False,
    unique_id: str | None = None,
) -> RegistryCheck:
    """sha256: the bytes' digest when the analysis already computed it; upload: the
    request's shared decode; legacy_pixel_key: also match pixel-identical images registered
    under the SHA-256 pixel key (a migration: docs/metadata.md, "Pixel identity key"); unique_id: the
    ImageUniqueID the analysis read (fingerprints.compute)."""
    sha = sha256 if sha256 is not None else hashlib.sha256(data).digest()
    backend = registry.backend if registry is not None else ""
    try:
        with tracing.span(_tracer, "fingerprint"):
            fp = fingerprints.compute(
                data, max_pixels, sha256=sha, upload=upload, legacy=legacy_pixel_key, unique_id=unique_id
            )
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
        if fp.legacy_pixel_sha256 and result.available:
            result = _with_legacy_matches(registry, fp, sighting, result)
    if metrics is not None:
        metrics.observe(result, time.perf_counter() - started, fingerprinted=True)
    return RegistryCheck(fp, sha, result)


def _with_legacy_matches(
    registry: Registry, fp: fingerprints.Fingerprints, sighting: Sighting, result: LookupResult
) -> LookupResult:
    """Adds the SAME_PIXELS matches of images registered under the SHA-256 pixel key: a
    second, read-only lookup with that key (registering stays under the current key)."""
    legacy = registry.lookup(dataclasses.replace(fp, pixel_sha256=fp.legacy_pixel_sha256), sighting, False)
    if not legacy.available:
        return result
    extra = [m for m in legacy.matches if m.kind == MatchKind.SAME_PIXELS]
    if not extra:
        return result
    matches = rank([*result.matches, *extra], sighting)  # each prior sighting once, under its strongest kind
    return dataclasses.replace(result, matches=matches, findings=findings(matches, sighting, fp.image_unique_id))
