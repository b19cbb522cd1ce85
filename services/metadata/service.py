"""Wires the metadata analysis into the shared runtime."""

from __future__ import annotations

from grpc import aio

from imagetrust.v1 import metadata_pb2, metadata_pb2_grpc
from services.common.config import MetadataConfig
from services.common.server import Service
from services.metadata.servicer import MetadataServicer

SERVICE_NAME = metadata_pb2.DESCRIPTOR.services_by_name["MetadataAnalyzer"].full_name


class MetadataService(Service):
    name = "metadata"
    service_names = (SERVICE_NAME,)

    def __init__(self, config: MetadataConfig) -> None:
        self.config = config

    def add_to_server(self, server: aio.Server) -> None:
        metadata_pb2_grpc.add_MetadataAnalyzerServicer_to_server(MetadataServicer(self.config), server)
