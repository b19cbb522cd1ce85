"""MetadataAnalyzer servicer: proto <-> domain only; errors are mapped by the runtime."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import cast

from google.protobuf import timestamp_pb2
from grpc import aio

from imagetrust.v1 import metadata_pb2, metadata_pb2_grpc
from services.common import tracing
from services.common.limits import check_context
from services.metadata.analysis import ANALYZER_VERSION, Analysis, PixelBudget
from services.metadata.config import MetadataConfig
from services.metadata.pipeline import inspect
from services.metadata.registry import check as registry_check
from services.metadata.registry.base import Registry
from services.metadata.registry.metrics import RegistryMetrics
from services.metadata.registry.model import LookupResult, Sighting
from services.metadata.registry.monitor import RegistryMonitor
from services.metadata.risk import risk_from_findings

_tracer = tracing.tracer("imagetrust.metadata")


def to_proto(a: Analysis) -> metadata_pb2.AnalyzeResponse:
    e = a.exif
    response = metadata_pb2.AnalyzeResponse(
        image=metadata_pb2.ImageInfo(
            format=a.format, width=a.width, height=a.height, size_bytes=a.size_bytes, mode=a.mode
        ),
        exif=metadata_pb2.ExifSummary(
            make=e.make,
            model=e.model,
            software=e.software,
            datetime=e.datetime,
            datetime_original=e.datetime_original,
            datetime_digitized=e.datetime_digitized,
            exif_width=e.exif_width,
            exif_height=e.exif_height,
            orientation=a.orientation,
            gps_present=e.gps_present,
            image_unique_id=e.image_unique_id,
            lens_model=e.lens_model,
            tag_count=e.tag_count,
            thumbnail_present=bool(e.thumbnail),
        ),
        findings=[f.to_proto() for f in a.findings],
        risk=a.risk,
        # The file's SHA-256 and the other keys come with the registry step (add_registry).
        fingerprints=metadata_pb2.Fingerprints(image_unique_id=e.image_unique_id),
        registry=metadata_pb2.RegistryResult(available=False, error="registry not configured"),
        analyzer_version=ANALYZER_VERSION,
    )
    if a.jpeg is not None:
        j = a.jpeg
        response.jpeg.CopyFrom(
            metadata_pb2.JpegInfo(
                markers=j.markers,
                progressive=j.progressive,
                subsampling=j.subsampling,
                estimated_quality=j.estimated_quality,
                standard_tables=j.standard_tables,
                trailing_bytes=j.trailing_bytes,
                has_xmp=j.has_xmp,
                has_icc=j.has_icc,
                has_photoshop_irb=j.has_photoshop_irb,
            )
        )
    else:
        response.jpeg.CopyFrom(
            metadata_pb2.JpegInfo(has_xmp=a.has_xmp, has_icc=a.has_icc, has_photoshop_irb=a.has_photoshop_irb)
        )
    return response


def upload_time(request: metadata_pb2.AnalyzeRequest) -> dt.datetime | None:
    if request.HasField("context") and request.context.HasField("uploaded_at"):
        return request.context.uploaded_at.ToDatetime(tzinfo=dt.UTC)
    return None


# --- reuse registry ------------------------------------------------------------------------
def sighting_from_proto(context) -> Sighting:
    seen_at = context.uploaded_at.ToSeconds() if context.HasField("uploaded_at") else time.time()
    return Sighting(context.seller_id, context.listing_id, context.conversation_id, context.platform, float(seen_at))


def registry_to_proto(result: LookupResult) -> metadata_pb2.RegistryResult:
    return metadata_pb2.RegistryResult(
        available=result.available,
        backend=result.backend,
        registered=result.registered,
        error=result.error,
        matches=[
            metadata_pb2.RegistryMatch(
                kind=cast("metadata_pb2.MatchKind", int(m.kind)),
                distance=m.distance,
                sighting=metadata_pb2.Sighting(
                    seller_id=m.sighting.seller_id,
                    listing_id=m.sighting.listing_id,
                    conversation_id=m.sighting.conversation_id,
                    platform=m.sighting.platform,
                    seen_at=timestamp_pb2.Timestamp(seconds=int(m.sighting.seen_at)),
                ),
            )
            for m in result.matches
        ],
    )


def add_registry(response: metadata_pb2.AnalyzeResponse, a: Analysis, rc: registry_check.RegistryCheck) -> None:
    fp = rc.fingerprints
    response.fingerprints.CopyFrom(
        metadata_pb2.Fingerprints(
            sha256=rc.sha256.hex(),
            pixel_sha256=fp.legacy_pixel_sha256.hex() if fp else "",
            pixel_key=fp.pixel_sha256.hex() if fp else "",
            pixel_key_algorithm=fp.pixel_key_algorithm if fp else "",
            perceptual_hash=fp.perceptual.hex() if fp else "",
            perceptual_algorithm=fp.perceptual_algorithm if fp else "",
            image_unique_id=fp.image_unique_id if fp else "",
        )
    )
    response.registry.CopyFrom(registry_to_proto(rc.result))
    response.findings.extend(f.to_proto() for f in rc.result.findings)
    # One rule over all findings, so registry evidence and file evidence combine.
    response.risk = risk_from_findings((*a.findings, *rc.result.findings))


class MetadataServicer(metadata_pb2_grpc.MetadataAnalyzerServicer):
    def __init__(
        self,
        config: MetadataConfig,
        registry: Registry | None = None,
        registry_metrics: RegistryMetrics | None = None,
        monitor: RegistryMonitor | None = None,
    ) -> None:
        """registry None: analysis only, every response says the registry is not configured."""
        self.config = config
        self.budget = PixelBudget(config.double_jpeg_max_pixels, config.thumbnail_max_pixels)
        # Bounded: a request's decode and hashes release the GIL, so these threads use the
        # pod's CPUs, and requests beyond them wait holding only their bytes.
        workers = config.analysis_workers or len(os.sched_getaffinity(0))
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="analyze")
        self.registry = registry
        self.registry_metrics = registry_metrics
        self.monitor = monitor

    async def Analyze(self, request: metadata_pb2.AnalyzeRequest, context: aio.ServicerContext):
        # Before the conversions below (uploaded_at -> datetime) and before the registry
        # stores the ids: a bad field is INVALID_ARGUMENT, never INTERNAL or a stored megabyte.
        check_context(request.context)
        # Off the event loop: parsing and decoding a large file must not stall other calls. The
        # worker runs in a copy of this call's context, so its log lines keep the request id and
        # its spans (decode+analyze, registry, fingerprint, lookup) nest under this call's.
        now, sighting = upload_time(request), sighting_from_proto(request.context)
        work = functools.partial(
            inspect,
            request.image.data,
            self.config.max_message_bytes,
            self.config.max_pixels,
            budget=self.budget,
            now=now,
            sighting=sighting,
            register=request.register,
            registry=self.registry,
            metrics=self.registry_metrics,
            legacy_pixel_key=self.config.legacy_pixel_key,
        )
        done = await asyncio.get_running_loop().run_in_executor(self.pool, contextvars.copy_context().run, work)
        result, rc = done.analysis, done.registry
        response = to_proto(result)
        if self.monitor is not None and rc.fingerprints is not None:
            await self.monitor.observe(rc.result.available, rc.result.error)
        add_registry(response, result, rc)
        return response
