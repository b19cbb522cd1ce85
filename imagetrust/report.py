"""Formatting check results for people (a table) and scripts (JSON lines)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from google.protobuf import json_format

from imagetrust.v1 import common_pb2, gateway_pb2


def decision_name(response: gateway_pb2.CheckResponse) -> str:
    return common_pb2.Decision.Name(response.decision)


def to_dict(path: str, response: gateway_pb2.CheckResponse | None, error: str | None) -> dict:
    if response is None:
        return {"file": path, "error": error}
    body = json_format.MessageToDict(response, preserving_proto_field_name=True)
    return {"file": path, **body}


def to_json_line(path: str, response: gateway_pb2.CheckResponse | None, error: str | None) -> str:
    return json.dumps(to_dict(path, response, error), sort_keys=False)


def _reasons(response: gateway_pb2.CheckResponse, limit: int = 4) -> str:
    codes = [r.code for r in response.reasons]
    text = ", ".join(codes[:limit])
    return text + (f" (+{len(codes) - limit})" if len(codes) > limit else "") or "-"


def table(rows: Sequence[tuple[str, gateway_pb2.CheckResponse | None, str | None]]) -> str:
    header = ("FILE", "DECISION", "RISK", "SYNTH", "META", "DEGRADED", "REASONS")
    lines = [header]
    for path, response, error in rows:
        if response is None:
            lines.append((path, "ERROR", "-", "-", "-", "-", error or ""))
            continue
        if not response.HasField("synthesis"):
            synth = "-"
        elif response.synthesis.placeholder:
            synth = "n/a"  # an untrained placeholder model: its number means nothing
        else:
            synth = f"{response.synthesis.score:.2f}"
        meta = f"{response.metadata.risk:.2f}" if response.HasField("metadata") else "-"
        degraded = ",".join(response.missing) if response.degraded else "no"
        lines.append((path, decision_name(response), f"{response.risk:.2f}", synth, meta, degraded, _reasons(response)))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header) - 1)]
    out = []
    for row in lines:
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1])
    return "\n".join(out)
