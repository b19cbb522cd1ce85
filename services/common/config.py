"""Typed configuration: the loader, and the settings every server has (ServerConfig).

Each service's own settings are a frozen dataclass in its package (services/gateway/config.py,
services/metadata/config.py, services/synthesis/config.py) extending ServerConfig. Every field
maps to an environment variable IMAGETRUST_<FIELD> and a command-line flag
--<field-with-dashes>; a flag wins over the environment, which wins over the default. The
server entry point (services/main.py) builds its flags and --help from these classes, so a
setting, its help text and the rationale of its default are written in exactly one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from imagetrust.channel import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

ENV_PREFIX = "IMAGETRUST_"
MIB = 1024 * 1024  # bytes

C = TypeVar("C", bound="DataclassInstance")


def setting(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse's name
    """A config field with its help text; the env name is derived from the field name."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for sequence defaults: configs are frozen")
    return dataclasses.field(default=default, metadata={"help": help})


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _parse(raw: str, typ: Any, name: str) -> Any:
    origin = typing.get_origin(typ)
    if typ is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{env_name(name)}: expected a boolean, got {raw!r}")
    if typ in (int, float):
        try:
            return typ(raw)
        except ValueError:  # int()'s own message names neither the setting nor the type
            raise ValueError(
                f"{env_name(name)}: expected {'an integer' if typ is int else 'a number'}, got {raw!r}"
            ) from None
    if typ is str:
        return raw
    if origin is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    raise TypeError(f"unsupported config type {typ!r} for {name}")


def load(cls: type[C], environ: Mapping[str, str] | None = None, **overrides: Any) -> C:
    """Builds cls from overrides (None means "not given"), then the environment, then defaults."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if overrides.get(f.name) is not None:
            value = overrides[f.name]
            if isinstance(value, str) and hints[f.name] is not str:
                value = _parse(value, hints[f.name], f.name)
            values[f.name] = value
        elif env_name(f.name) in environ:
            values[f.name] = _parse(environ[env_name(f.name)], hints[f.name], f.name)
    config = cls(**values)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Adds one --flag per field of cls; every flag defaults to None ("not given")."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} (flags override {ENV_PREFIX}* variables)")
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} [env {env_name(f.name)}, default {f.default!r}]"
        if hints[f.name] is bool:
            group.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            group.add_argument(flag, dest=f.name, default=None, help=help_text)


def from_args(cls: type[C], args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> C:
    names = {f.name for f in dataclasses.fields(cls)}
    return load(cls, environ, **{k: v for k, v in vars(args).items() if k in names})


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Settings every ImageTrust gRPC server has."""

    host: str = setting("0.0.0.0", "address to listen on")
    port: int = setting(0, "gRPC port (0: pick a free one)")
    metrics_port: int = setting(0, "Prometheus /metrics HTTP port (0: pick a free one, -1: off)")
    # imagetrust.channel.MAX_MESSAGE_BYTES (32 MiB), the SDK's limit too: phone photos
    # (12-50 MP JPEG/HEIC) exceed gRPC's 4 MiB default.
    max_message_bytes: int = setting(MAX_MESSAGE_BYTES, "largest request/response message, bytes")
    # 20 s: long enough for a queued CNN batch to finish, short of Kubernetes' 30 s default
    # terminationGracePeriodSeconds.
    grace_s: float = setting(20.0, "seconds to finish in-flight calls on SIGTERM")
    # 120 MP: above the 108 MP phone sensors, far below what a decompression bomb declares.
    max_pixels: int = setting(120_000_000, "largest decoded image, pixels")
    max_concurrent_rpcs: int = setting(1024, "calls served at once; more get RESOURCE_EXHAUSTED")
    # Keepalive pings find dead peers behind NATs and load balancers; 60 s / 20 s is well
    # above gRPC's minimum ping interval so clients are not sent GOAWAY for pinging.
    keepalive_time_s: float = setting(60.0, "seconds between server keepalive pings")
    keepalive_timeout_s: float = setting(20.0, "seconds to wait for a keepalive ack")
    # 5 min: clients reconnect (and so re-resolve and re-balance across pods behind a
    # Kubernetes Service) at least this often; the grace lets their open calls finish.
    max_connection_age_s: float = setting(300.0, "seconds before a connection is asked to go away")
    max_connection_age_grace_s: float = setting(30.0, "seconds an aged connection may finish calls")
    # TLS is off by default (loopback, `imagetrust up`); production sets all three for mTLS.
    tls_cert: str = setting("", "PEM server certificate chain (empty: plaintext)")
    tls_key: str = setting("", "PEM private key for tls_cert")
    tls_client_ca: str = setting("", "PEM CA bundle; when set, clients must present a certificate it signed (mTLS)")
    # 5 s: a renewal lands hours to days before expiry; a handshake must not stat files each time.
    tls_reload_interval_s: float = setting(5.0, "seconds between checks of the TLS files for a rotated certificate")
    log_level: str = setting("INFO", "logging level")
    log_format: str = setting("json", "log format: json or text")

    def validate(self) -> None:
        if self.max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")
        if self.log_format not in ("json", "text"):
            raise ValueError("log_format must be json or text")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be set together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca (mTLS) needs tls_cert and tls_key")


# The per-service classes live with their services (services/<name>/config.py); these names
# keep `from services.common.config import GatewayConfig` working for existing callers.
_SERVICE_CONFIGS = {
    "GatewayConfig": "services.gateway.config",
    "MetadataConfig": "services.metadata.config",
    "SynthesisConfig": "services.synthesis.config",
}


def __getattr__(name: str) -> Any:
    if name in _SERVICE_CONFIGS:
        import importlib

        return getattr(importlib.import_module(_SERVICE_CONFIGS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
