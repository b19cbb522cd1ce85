"""The three services by name: their config class and how to build them.

Imports are lazy so `imagetrust serve gateway` never imports torch (only synthesis does).
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from services.common.config import GatewayConfig, MetadataConfig, ServerConfig, SynthesisConfig


class ServiceSpec(NamedTuple):
    config_class: type[ServerConfig]
    factory: str  # "module:Class"


SERVICES: dict[str, ServiceSpec] = {
    "gateway": ServiceSpec(GatewayConfig, "services.gateway.service:GatewayService"),
    "metadata": ServiceSpec(MetadataConfig, "services.metadata.service:MetadataService"),
    "synthesis": ServiceSpec(SynthesisConfig, "services.synthesis.service:SynthesisService"),
}


def build(name: str, config: ServerConfig):
    module, cls = SERVICES[name].factory.split(":")
    return getattr(importlib.import_module(module), cls)(config)
