"""One upload's whole metadata answer: the analysis, then the fingerprints and the registry
step, all reading the same decode (decoded.py). Runs on one worker thread per request."""

from __future__ import annotations

import dataclasses
import datetime as dt

from services.common import tracing
from services.metadata import fingerprints
from services.metadata.analysis import Analysis, PixelBudget, analyze_upload
from services.metadata.decoded import DecodeNeeds
from services.metadata.registry import check as registry_check
from services.metadata.registry.base import Registry
from services.metadata.registry.metrics import RegistryMetrics
from services.metadata.registry.model import Sighting

_tracer = tracing.tracer("imagetrust.metadata")


@dataclasses.dataclass(frozen=True)
class Inspection:
    analysis: Analysis
    registry: registry_check.RegistryCheck
    decodes: int  # decodes the upload took (1, or 0 when no pixels were needed or readable)


def inspect(
    data: bytes,
    max_bytes: int,
    max_pixels: int,
    *,
    budget: PixelBudget,
    now: dt.datetime | None,
    sighting: Sighting,
    register: bool,
    registry: Registry | None,
    metrics: RegistryMetrics | None = None,
    legacy_pixel_key: bool = False,
) -> Inspection:
    """Raises InvalidImage / TooLarge when the header cannot be read or is over the limits;
    pixels that cannot be decoded are findings and a registry error, not an exception."""
    # The legacy SHA-256 key hashes full-resolution RGB: then that is the one decode.
    needs = fingerprints.NEEDS | DecodeNeeds(full=legacy_pixel_key, colour=legacy_pixel_key)
    with tracing.span(_tracer, "decode+analyze", {"imagetrust.image_bytes": len(data)}):
        result, upload = analyze_upload(data, max_bytes, max_pixels, budget=budget, now=now, needs=needs)
    with tracing.span(_tracer, "registry", {"imagetrust.register": register}):  # fingerprint and lookup nest here
        rc = registry_check.run(
            data,
            sighting,
            register,
            registry,
            max_pixels,
            metrics=metrics,  # the file's SHA-256 is a fingerprint: computed there, once
            upload=upload,
            legacy_pixel_key=legacy_pixel_key,
            unique_id=result.exif.registry_unique_id,
        )
    return Inspection(result, rc, upload.decodes)
