"""The generated code in imagetrust/v1 must equal a fresh run of scripts/gen_protos.py."""

from __future__ import annotations

import filecmp
import pathlib
import subprocess
import sys

from tests.helpers.paths import REPO


def test_generated_code_is_fresh(tmp_path: pathlib.Path) -> None:
    subprocess.run([sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--out", str(tmp_path)], check=True)
    fresh = tmp_path / "imagetrust" / "v1"
    committed = REPO / "imagetrust" / "v1"
    fresh_names = sorted(p.name for p in fresh.iterdir() if p.is_file())
    committed_names = sorted(p.name for p in committed.iterdir() if p.is_file())
    assert fresh_names == committed_names, "generated file set differs: run `make protos`"
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, fresh_names, shallow=False)
    assert not mismatch and not errors, f"stale generated code {mismatch + errors}: run `make protos` and commit"


def test_api_field_names_clients_rely_on() -> None:
    from imagetrust.v1 import common_pb2, gateway_pb2, metadata_pb2, synthesis_pb2

    assert {"seller_id", "listing_id", "conversation_id", "platform"} <= set(
        common_pb2.Context.DESCRIPTOR.fields_by_name
    )
    assert "data" in common_pb2.Image.DESCRIPTOR.fields_by_name
    assert {"code", "severity", "message", "evidence"} <= set(common_pb2.Finding.DESCRIPTOR.fields_by_name)
    assert "register" in metadata_pb2.AnalyzeRequest.DESCRIPTOR.fields_by_name
    assert "register" in gateway_pb2.CheckRequest.DESCRIPTOR.fields_by_name
    assert "score" in synthesis_pb2.DetectResponse.DESCRIPTOR.fields_by_name
    assert {"decision", "degraded"} <= set(gateway_pb2.CheckResponse.DESCRIPTOR.fields_by_name)
    assert {"make", "model"} <= set(metadata_pb2.ExifSummary.DESCRIPTOR.fields_by_name)
    assert [v.name for v in common_pb2.Decision.DESCRIPTOR.values][1:] == ["ALLOW", "REVIEW", "BLOCK"]
    stream = gateway_pb2.DESCRIPTOR.services_by_name["ImageTrust"].methods_by_name["CheckStream"]
    assert stream.client_streaming and stream.server_streaming
