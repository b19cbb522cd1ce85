from __future__ import annotations

import argparse
import dataclasses

import pytest

from services.common import config as cfg


def test_defaults_match_the_documented_ports() -> None:
    assert (cfg.load(cfg.GatewayConfig, {}).port, cfg.load(cfg.GatewayConfig, {}).metrics_port) == (50051, 9091)
    assert (cfg.load(cfg.MetadataConfig, {}).port, cfg.load(cfg.MetadataConfig, {}).metrics_port) == (50052, 9092)
    assert (cfg.load(cfg.SynthesisConfig, {}).port, cfg.load(cfg.SynthesisConfig, {}).metrics_port) == (50053, 9093)
    gateway = cfg.load(cfg.GatewayConfig, {})
    assert gateway.synthesis_addr.endswith(":50053") and gateway.metadata_addr.endswith(":50052")
    assert gateway.max_message_bytes == 32 * 1024 * 1024


def test_flag_beats_environment_beats_default() -> None:
    env = {"IMAGETRUST_PORT": "6000", "IMAGETRUST_GRACE_S": "2.5", "IMAGETRUST_LOG_FORMAT": "text"}
    assert cfg.load(cfg.GatewayConfig, env).port == 6000
    assert cfg.load(cfg.GatewayConfig, env).grace_s == 2.5
    assert cfg.load(cfg.GatewayConfig, env, port="7000").port == 7000
    assert cfg.load(cfg.GatewayConfig, env, port=None).port == 6000


def test_flags_are_generated_from_the_dataclass() -> None:
    parser = argparse.ArgumentParser()
    cfg.add_arguments(parser, cfg.SynthesisConfig)
    args = parser.parse_args(["--max-batch-size", "4"])
    config = cfg.from_args(cfg.SynthesisConfig, args, environ={})
    assert config.max_batch_size == 4
    assert config.port == 50053


def test_configs_are_frozen_and_validated() -> None:
    config = cfg.load(cfg.ServerConfig, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="boolean"):
        cfg._parse("maybe", bool, "flag")
    with pytest.raises(ValueError, match="log_format"):
        cfg.load(cfg.ServerConfig, {"IMAGETRUST_LOG_FORMAT": "xml"})
    # A number that does not parse names the variable (int()'s own message names neither).
    with pytest.raises(ValueError, match=r"^IMAGETRUST_PORT: expected an integer, got 'abc'$"):
        cfg.load(cfg.ServerConfig, {"IMAGETRUST_PORT": "abc"})
    with pytest.raises(ValueError, match=r"^IMAGETRUST_GRACE_S: expected a number, got '5s'$"):
        cfg.load(cfg.ServerConfig, {"IMAGETRUST_GRACE_S": "5s"})
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        cfg.load(cfg.ServerConfig, {"IMAGETRUST_TLS_CERT": "/x.pem"})


def test_every_setting_has_help_text() -> None:
    for cls in (cfg.GatewayConfig, cfg.MetadataConfig, cfg.SynthesisConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


def test_redis_cluster_mode_is_read_from_the_environment_and_needs_a_url() -> None:
    env = {"IMAGETRUST_REDIS_URL": "redis://node-0:6379/0", "IMAGETRUST_REDIS_CLUSTER": "true"}
    assert cfg.load(cfg.MetadataConfig, env).redis_cluster
    assert not cfg.load(cfg.MetadataConfig, {}).redis_cluster
    with pytest.raises(ValueError, match="redis_url"):
        cfg.load(cfg.MetadataConfig, {"IMAGETRUST_REDIS_CLUSTER": "1"})
