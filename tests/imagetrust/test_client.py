"""The Python SDK (sync and asyncio) and the CLI that uses it, against a real gateway."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from imagetrust import cli
from imagetrust.client import AsyncClient, Client, channel_credentials, service_config, settings_from_env
from tests.helpers.paths import SAMPLES
from tests.helpers.ports import free_port


def test_settings_from_env():
    settings = settings_from_env(
        {
            "IMAGETRUST_GATEWAY": "dns:///imagetrust-gateway.trust.svc:50051",
            "IMAGETRUST_API_KEY": "k-1",
            "IMAGETRUST_CLIENT_TLS_CA": "/etc/imagetrust/ca.pem",
            "IMAGETRUST_CLIENT_TIMEOUT_S": "2.5",
            "IMAGETRUST_CLIENT_TLS_SERVER_NAME": "gateway.internal",
        }
    )
    assert settings["target"] == "dns:///imagetrust-gateway.trust.svc:50051"
    assert settings["api_key"] == "k-1" and settings["timeout"] == 2.5
    assert settings["tls_ca"] == "/etc/imagetrust/ca.pem" and settings["tls_cert"] is None
    assert settings["tls_server_name"] == "gateway.internal"
    assert settings_from_env({})["target"] == "localhost:50051"


def test_credentials_and_retry_config():
    assert channel_credentials() is None
    with pytest.raises(ValueError, match="go together"):
        channel_credentials(ca=b"x", cert=b"y")
    policy = json.loads(service_config(4))["methodConfig"][0]["retryPolicy"]
    assert policy["maxAttempts"] == 4 and policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert "methodConfig" not in json.loads(service_config(1))


def test_sync_client_from_env_with_a_path(gateway_module, monkeypatch):
    monkeypatch.setenv("IMAGETRUST_GATEWAY", gateway_module.address)
    with Client.from_env(timeout=20) as client:
        assert client.timeout == 20
        response = client.check(SAMPLES / "sns_resave.jpg", seller_id="s-9", listing_id="l-9", register=True)
    assert response.metadata.image.format == "jpeg" and not response.degraded


def test_async_client_concurrent_checks(gateway_module, jpegs):
    async def run():
        async with AsyncClient(gateway_module.address, timeout=20) as client:
            return await asyncio.gather(*(client.check(j, client_ref=str(i)) for i, j in enumerate(jpegs)))

    responses = asyncio.run(run())
    assert [r.client_ref for r in responses] == [str(i) for i in range(len(jpegs))]
    assert all(r.decision != 0 and not r.degraded for r in responses)


def test_unreachable_gateway_fails_fast_with_unavailable(jpeg):
    with Client(f"127.0.0.1:{free_port()}", timeout=5) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.check(jpeg)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_cli_check_uses_the_sdk(gateway_module, capsys):
    files = [str(SAMPLES / "camera_original.jpg"), str(SAMPLES / "composite_pasted.jpg")]
    code = cli.main(["check", *files, "--addr", gateway_module.address, "--json", "--no-progress"])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in rows] == files
    assert all(r["decision"] in ("ALLOW", "REVIEW", "BLOCK") and r["policy_version"] == "2026-11.1" for r in rows)


@pytest.mark.parametrize("raw", ["10s", "0", "-1", "inf"])
def test_a_bad_client_timeout_in_the_environment_names_the_variable(raw):
    with pytest.raises(ValueError, match=f"IMAGETRUST_CLIENT_TIMEOUT_S: expected seconds above 0, got '{raw}'"):
        settings_from_env({"IMAGETRUST_CLIENT_TIMEOUT_S": raw})
