"""The three services by name: their config class and how to build them.

The service modules are imported only when built, so serving the gateway never imports
torch (only synthesis does); the config modules import nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, NamedTuple

from services.common.config import ServerConfig
from services.gateway.config import GatewayConfig
from services.metadata.config import MetadataConfig
from services.synthesis.config import SynthesisConfig

if TYPE_CHECKING:
    from services.common.server import Service


class ServiceSpec(NamedTuple):
    config_class: type[ServerConfig]
    factory: str  # "module:Class"


SERVICES: dict[str, ServiceSpec] = {
    "gateway": ServiceSpec(GatewayConfig, "services.gateway.service:GatewayService"),
    "metadata": ServiceSpec(MetadataConfig, "services.metadata.service:MetadataService"),
    "synthesis": ServiceSpec(SynthesisConfig, "services.synthesis.service:SynthesisService"),
}


def build(name: str, config: ServerConfig) -> Service:
    module, cls = SERVICES[name].factory.split(":")
    service: Service = getattr(importlib.import_module(module), cls)(config)
    return service
