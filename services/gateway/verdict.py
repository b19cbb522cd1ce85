"""Combines the backends' answers into one decision with reasons.

MINIMAL until the gateway issue (7) lands the policy-as-data: risk is the larger of the
synthesis score and the metadata risk; REVIEW from 0.5, BLOCK from 0.85.
"""

from __future__ import annotations

import dataclasses

from imagetrust.v1 import common_pb2, metadata_pb2, synthesis_pb2

REVIEW_FROM = 0.5  # risk in [0, 1]
BLOCK_FROM = 0.85  # risk in [0, 1]
POLICY_VERSION = "minimal-0"


@dataclasses.dataclass(frozen=True)
class Verdict:
    decision: int
    risk: float
    reasons: tuple[common_pb2.Finding, ...]


def combine(
    synthesis: synthesis_pb2.DetectResponse | None,
    metadata: metadata_pb2.AnalyzeResponse | None,
    missing: tuple[str, ...],
) -> Verdict:
    risks = []
    reasons: list[common_pb2.Finding] = []
    if synthesis is not None and not synthesis.placeholder:
        risks.append(synthesis.score)
    if metadata is not None:
        risks.append(metadata.risk)
        reasons.extend(metadata.findings)
    for name in missing:
        reasons.append(
            common_pb2.Finding(
                code="BACKEND_UNAVAILABLE", severity=common_pb2.LOW, source="gateway",
                message=f"the {name} check did not answer in time; the verdict is based on the rest",
                evidence={"backend": name},
            )
        )
    risk = max(risks, default=0.0)
    decision = common_pb2.BLOCK if risk >= BLOCK_FROM else common_pb2.REVIEW if risk >= REVIEW_FROM else common_pb2.ALLOW
    reasons.sort(key=lambda f: -f.severity)
    return Verdict(decision, float(risk), tuple(reasons))
