"""MetadataAnalyzer servicer: proto <-> domain only; errors are mapped by the runtime."""

from __future__ import annotations

import asyncio

from grpc import aio

from imagetrust.v1 import metadata_pb2, metadata_pb2_grpc
from services.common.config import MetadataConfig
from services.metadata.analysis import ANALYZER_VERSION, Analysis, analyze


def to_proto(a: Analysis) -> metadata_pb2.AnalyzeResponse:
    return metadata_pb2.AnalyzeResponse(
        image=metadata_pb2.ImageInfo(
            format=a.format, width=a.width, height=a.height, size_bytes=a.size_bytes, mode=a.mode
        ),
        risk=a.risk,
        fingerprints=metadata_pb2.Fingerprints(sha256=a.sha256),
        registry=metadata_pb2.RegistryResult(available=False, error="registry not configured"),
        analyzer_version=ANALYZER_VERSION,
    )


class MetadataServicer(metadata_pb2_grpc.MetadataAnalyzerServicer):
    def __init__(self, config: MetadataConfig) -> None:
        self.config = config

    async def Analyze(self, request: metadata_pb2.AnalyzeRequest, context: aio.ServicerContext):
        # Off the event loop: parsing a large file must not stall other calls.
        result = await asyncio.to_thread(
            analyze, request.image.data, self.config.max_message_bytes, self.config.max_pixels
        )
        return to_proto(result)
