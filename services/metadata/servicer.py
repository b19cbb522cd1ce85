"""MetadataAnalyzer servicer: proto <-> domain only; errors are mapped by the runtime."""

from __future__ import annotations

import asyncio
import datetime as dt

from grpc import aio

from imagetrust.v1 import metadata_pb2, metadata_pb2_grpc
from services.common.config import MetadataConfig
from services.metadata.analysis import ANALYZER_VERSION, Analysis, PixelBudget, analyze


def to_proto(a: Analysis) -> metadata_pb2.AnalyzeResponse:
    e = a.exif
    response = metadata_pb2.AnalyzeResponse(
        image=metadata_pb2.ImageInfo(
            format=a.format, width=a.width, height=a.height, size_bytes=a.size_bytes, mode=a.mode
        ),
        exif=metadata_pb2.ExifSummary(
            make=e.make, model=e.model, software=e.software, datetime=e.datetime,
            datetime_original=e.datetime_original, datetime_digitized=e.datetime_digitized,
            exif_width=e.exif_width, exif_height=e.exif_height, orientation=a.orientation,
            gps_present=e.gps_present, image_unique_id=e.image_unique_id, lens_model=e.lens_model,
            tag_count=e.tag_count, thumbnail_present=bool(e.thumbnail),
        ),
        findings=[f.to_proto() for f in a.findings],
        risk=a.risk,
        fingerprints=metadata_pb2.Fingerprints(sha256=a.sha256, image_unique_id=e.image_unique_id),
        registry=metadata_pb2.RegistryResult(available=False, error="registry not configured"),
        analyzer_version=ANALYZER_VERSION,
    )
    if a.jpeg is not None:
        j = a.jpeg
        response.jpeg.CopyFrom(metadata_pb2.JpegInfo(
            markers=j.markers, progressive=j.progressive, subsampling=j.subsampling,
            estimated_quality=j.estimated_quality, standard_tables=j.standard_tables,
            trailing_bytes=j.trailing_bytes, has_xmp=j.has_xmp, has_icc=j.has_icc,
            has_photoshop_irb=j.has_photoshop_irb,
        ))
    else:
        response.jpeg.CopyFrom(metadata_pb2.JpegInfo(
            has_xmp=a.has_xmp, has_icc=a.has_icc, has_photoshop_irb=a.has_photoshop_irb
        ))
    return response


def upload_time(request: metadata_pb2.AnalyzeRequest) -> dt.datetime | None:
    if request.HasField("context") and request.context.HasField("uploaded_at"):
        return request.context.uploaded_at.ToDatetime(tzinfo=dt.timezone.utc)
    return None


class MetadataServicer(metadata_pb2_grpc.MetadataAnalyzerServicer):
    def __init__(self, config: MetadataConfig) -> None:
        self.config = config
        self.budget = PixelBudget(config.double_jpeg_max_pixels, config.thumbnail_max_pixels)

    async def Analyze(self, request: metadata_pb2.AnalyzeRequest, context: aio.ServicerContext):
        # Off the event loop: parsing a large file must not stall other calls.
        result = await asyncio.to_thread(
            analyze, request.image.data, self.config.max_message_bytes, self.config.max_pixels,
            budget=self.budget, now=upload_time(request),
        )
        return to_proto(result)
