"""The registry step of an analysis: fingerprint the upload, then look it up (and register)."""

from __future__ import annotations

import dataclasses
import hashlib

from services.common.errors import InvalidImage
from services.common.findings import Severity
from services.metadata import fingerprints
from services.metadata.registry.base import Registry
from services.metadata.registry.model import LookupResult, Sighting

# Until the metadata risk rule (docs/findings.md, services/metadata/risk.py) covers
# registry codes, a registry finding contributes this risk in [0, 1] by severity.
SEVERITY_RISK = {Severity.INFO: 0.0, Severity.LOW: 0.2, Severity.MEDIUM: 0.5, Severity.HIGH: 0.9}


@dataclasses.dataclass(frozen=True)
class RegistryCheck:
    fingerprints: fingerprints.Fingerprints | None  # None: the pixels could not be decoded
    sha256: bytes
    result: LookupResult


def run(data: bytes, sighting: Sighting, register: bool, registry: Registry | None, max_pixels: int) -> RegistryCheck:
    sha = hashlib.sha256(data).digest()
    backend = registry.backend if registry is not None else ""
    try:
        fp = fingerprints.compute(data, max_pixels)
    except InvalidImage as exc:
        # A file whose header parses but whose pixels do not (truncated, corrupt) still gets
        # its metadata analysis; it just cannot be matched on content.
        return RegistryCheck(None, sha, LookupResult(backend, available=False, error=f"cannot fingerprint: {exc}"))
    if registry is None:
        return RegistryCheck(fp, sha, LookupResult("", available=False, error="registry not configured"))
    return RegistryCheck(fp, sha, registry.lookup(fp, sighting, register))


def registry_risk(result: LookupResult) -> float:
    return max((SEVERITY_RISK[f.severity] for f in result.findings), default=0.0)
