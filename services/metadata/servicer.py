"""MetadataAnalyzer servicer: proto <-> domain only; errors are mapped by the runtime."""

from __future__ import annotations

import asyncio
import time

from google.protobuf import timestamp_pb2
from grpc import aio

from imagetrust.v1 import metadata_pb2, metadata_pb2_grpc
from services.common.config import MetadataConfig
from services.metadata.analysis import ANALYZER_VERSION, Analysis, analyze
from services.metadata.registry import check as registry_check
from services.metadata.registry.model import LookupResult, Sighting

try:  # the metadata risk rule (issue 3); registry findings feed it when it exists
    from services.metadata.risk import risk_from_findings
except ImportError:  # pragma: no cover - until services/metadata/risk.py lands
    risk_from_findings = None


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


# --- registry (issue 4) ---------------------------------------------------------------------
def sighting_from_proto(context) -> Sighting:
    seen_at = context.uploaded_at.ToSeconds() if context.HasField("uploaded_at") else time.time()
    return Sighting(context.seller_id, context.listing_id, context.conversation_id, context.platform, float(seen_at))


def registry_to_proto(result: LookupResult) -> metadata_pb2.RegistryResult:
    return metadata_pb2.RegistryResult(
        available=result.available, backend=result.backend, registered=result.registered, error=result.error,
        matches=[
            metadata_pb2.RegistryMatch(
                kind=int(m.kind), distance=m.distance,
                sighting=metadata_pb2.Sighting(
                    seller_id=m.sighting.seller_id, listing_id=m.sighting.listing_id,
                    conversation_id=m.sighting.conversation_id, platform=m.sighting.platform,
                    seen_at=timestamp_pb2.Timestamp(seconds=int(m.sighting.seen_at)),
                ),
            )
            for m in result.matches
        ],
    )


def add_registry(response: metadata_pb2.AnalyzeResponse, a: Analysis, rc: registry_check.RegistryCheck) -> None:
    fp = rc.fingerprints
    response.fingerprints.CopyFrom(metadata_pb2.Fingerprints(
        sha256=rc.sha256.hex(),
        pixel_sha256=fp.pixel_sha256.hex() if fp else "",
        perceptual_hash=fp.perceptual.hex() if fp else "",
        perceptual_algorithm=fp.perceptual_algorithm if fp else "",
        image_unique_id=fp.image_unique_id if fp else "",
    ))
    response.registry.CopyFrom(registry_to_proto(rc.result))
    response.findings.extend(f.to_proto() for f in rc.result.findings)
    if risk_from_findings is not None:
        response.risk = risk_from_findings((*a.findings, *rc.result.findings))
    else:
        response.risk = max(response.risk, registry_check.registry_risk(rc.result))


class MetadataServicer(metadata_pb2_grpc.MetadataAnalyzerServicer):
    def __init__(self, config: MetadataConfig) -> None:
        self.config = config
        self.registry = None  # set by MetadataService.load()
        self.monitor = None

    async def Analyze(self, request: metadata_pb2.AnalyzeRequest, context: aio.ServicerContext):
        # Off the event loop: parsing a large file must not stall other calls.
        result = await asyncio.to_thread(
            analyze, request.image.data, self.config.max_message_bytes, self.config.max_pixels
        )
        response = to_proto(result)
        rc = await asyncio.to_thread(
            registry_check.run, request.image.data, sighting_from_proto(request.context), request.register,
            self.registry, self.config.max_pixels,
        )
        if self.monitor is not None and rc.fingerprints is not None:
            await self.monitor.observe(rc.result.available, rc.result.error)
        add_registry(response, result, rc)
        return response
