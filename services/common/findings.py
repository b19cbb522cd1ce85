"""Findings: stable codes with a severity, a message and the evidence behind them.

Domain code builds these; servicers convert them with to_proto(). Codes are stable API
(platforms build policy on them) and are listed in docs/findings.md.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import cast

from imagetrust.v1 import common_pb2


class Severity(enum.IntEnum):
    # Values equal the proto enum's, so conversion is a cast.
    INFO = common_pb2.INFO
    LOW = common_pb2.LOW
    MEDIUM = common_pb2.MEDIUM
    HIGH = common_pb2.HIGH


@dataclasses.dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    evidence: Mapping[str, str] = dataclasses.field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if not self.code or self.code.upper() != self.code or " " in self.code:
            raise ValueError(f"finding codes are UPPER_SNAKE strings, got {self.code!r}")
        # Evidence is shown to people and logged: always strings.
        object.__setattr__(self, "evidence", {str(k): str(v) for k, v in self.evidence.items()})

    def to_proto(self) -> common_pb2.Finding:
        return common_pb2.Finding(
            # The stubs type enum fields as the enum's wrapper class; the value is its int.
            code=self.code,
            severity=cast("common_pb2.Severity", int(self.severity)),
            message=self.message,
            evidence=dict(self.evidence),
            source=self.source,
        )
