"""Metadata risk in [0, 1] from findings: a noisy-OR of per-severity weights.

Each finding is read as independent evidence that the photo is not the seller's own
camera original, with a probability set by its severity; the risk is the probability
that at least one of them is right: risk = 1 - prod(1 - w(severity)). It is monotone
(another finding never lowers it), bounded, order-independent, and any finding source
can be added (the registry recomputes it after adding its own findings).
The weights are documented in docs/findings.md; change them there and here together.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.common.findings import Finding, Severity

SEVERITY_WEIGHTS: dict[Severity, float] = {
    Severity.INFO: 0.0,  # privacy notes and facts: never risk
    Severity.LOW: 0.10,
    Severity.MEDIUM: 0.25,
    Severity.HIGH: 0.60,
}


def risk_from_findings(findings: Iterable[Finding]) -> float:
    keep = 1.0
    for finding in findings:
        keep *= 1.0 - SEVERITY_WEIGHTS.get(Severity(finding.severity), 0.0)
    return round(1.0 - keep, 4)
