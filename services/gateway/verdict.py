"""Combines the backends' answers into one explainable verdict under a Policy.

Pure and synchronous (no I/O), so every rule is tested with constructed protos. The
semantics are documented in policy.yaml and docs/gateway.md; in short: each signal
contributes c in [0, 1], risk = 1 - prod(1 - c), thresholds give the decision, and hard
rules can only raise it. Every contribution and every rule that fired is a reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from imagetrust.v1 import common_pb2, metadata_pb2, synthesis_pb2
from services.gateway.policy import Policy, Rule

SOURCE = "gateway"  # Finding.source of the reasons the gateway itself adds


@dataclasses.dataclass(frozen=True)
class Verdict:
    decision: int  # common_pb2.Decision
    risk: float  # in [0, 1]
    reasons: tuple[common_pb2.Finding, ...]
    policy_version: str


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _decision_from_risk(policy: Policy, risk: float) -> int:
    if risk >= policy.block_from:
        return common_pb2.BLOCK
    if risk >= policy.review_from:
        return common_pb2.REVIEW
    return common_pb2.ALLOW


def _real_score(synthesis: synthesis_pb2.DetectResponse | None) -> float | None:
    """The synthesis score, or None when there is none, it comes from a placeholder model, or
    the model could not judge the image (uncertain: too few patches carry camera traces)."""
    if synthesis is None or synthesis.placeholder or synthesis.uncertain:
        return None
    return float(synthesis.score)


def _synthesis_reason(
    policy: Policy, synthesis: synthesis_pb2.DetectResponse, contribution: float
) -> common_pb2.Finding:
    score = synthesis.score
    severity = (
        common_pb2.HIGH
        if score >= policy.block_from
        else common_pb2.MEDIUM
        if score >= policy.review_from
        else common_pb2.LOW
    )
    method = _method(synthesis)
    judged = f", {synthesis.valid_patches} patches judged" if synthesis.valid_patches else ""
    return common_pb2.Finding(
        code="SYNTHESIS_SCORE",
        severity=severity,
        source="synthesis",
        message=f"the synthesis model ({method}{judged}) scores this photo {score:.2f} "
        "for compositing or manipulation (0 = none, 1 = certain)",
        evidence={
            "score": _fmt(score),
            "global_score": _fmt(synthesis.global_score),
            "local_score": _fmt(synthesis.local_score),
            "model_version": synthesis.model_version,
            "method": method,
            "valid_patches": str(synthesis.valid_patches),
            "risk_contribution": _fmt(contribution),
        },
    )


def _method(synthesis: synthesis_pb2.DetectResponse) -> str:
    # Servers from before the consistency model do not fill `method`: they ran a CNN.
    return synthesis.method or "cnn"


def _uncertain_reason(synthesis: synthesis_pb2.DetectResponse) -> common_pb2.Finding:
    return common_pb2.Finding(
        code="SYNTHESIS_UNCERTAIN",
        severity=common_pb2.INFO,
        source=SOURCE,
        message=f"too few parts of this photo carry camera traces for the synthesis model to judge it "
        f"({synthesis.valid_patches} usable patches: small, flat or clipped); "
        "no synthesis score was used and this verdict does not cover compositing",
        evidence={
            "valid_patches": str(synthesis.valid_patches),
            "method": _method(synthesis),
            "model_version": synthesis.model_version,
        },
    )


def _placeholder_reason(synthesis: synthesis_pb2.DetectResponse) -> common_pb2.Finding:
    return common_pb2.Finding(
        code="SYNTHESIS_PLACEHOLDER",
        severity=common_pb2.INFO,
        source=SOURCE,
        message="the synthesis model is a placeholder that is not trained to detect anything; "
        "its score was ignored and this verdict does not cover compositing",
        evidence={"model_version": synthesis.model_version, "score_ignored": _fmt(synthesis.score)},
    )


def _missing_reason(name: str, cause: str) -> common_pb2.Finding:
    return common_pb2.Finding(
        code="BACKEND_UNAVAILABLE",
        severity=common_pb2.LOW,
        source=SOURCE,
        message=f"the {name} check did not answer ({cause}); the verdict is based on the rest",
        evidence={"backend": name, "cause": cause},
    )


def _fires(rule: Rule, codes: set[str], severities: list[int], score: float | None, missing: Mapping[str, str]) -> bool:
    when = rule.when
    if when.findings_any and not codes.intersection(when.findings_any):
        return False
    if when.synthesis_score_at_least is not None and (score is None or score < when.synthesis_score_at_least):
        return False
    if when.missing_all and not all(name in missing for name in when.missing_all):
        return False
    return not (when.count and sum(1 for s in severities if s >= when.severity_at_least) < when.count)


def _rule_reason(rule: Rule) -> common_pb2.Finding:
    name = common_pb2.Decision.Name(rule.decision)
    return common_pb2.Finding(
        code="POLICY_RULE",
        severity=common_pb2.HIGH if rule.decision == common_pb2.BLOCK else common_pb2.MEDIUM,
        source=SOURCE,
        message=f"{rule.message or rule.name} (rule {rule.name}: at least {name})",
        evidence={"rule": rule.name, "decision": name},
    )


def decide(
    policy: Policy,
    synthesis: synthesis_pb2.DetectResponse | None,
    metadata: metadata_pb2.AnalyzeResponse | None,
    missing: Mapping[str, str],
) -> Verdict:
    """One verdict; `missing` maps each backend without an answer to why (for the reason)."""
    contributions: list[float] = []
    reasons: list[tuple[common_pb2.Finding, float]] = []

    score = _real_score(synthesis)
    if synthesis is not None and synthesis.placeholder:
        reasons.append((_placeholder_reason(synthesis), 0.0))
    elif synthesis is not None and synthesis.uncertain:
        reasons.append((_uncertain_reason(synthesis), 0.0))
    elif synthesis is not None and score is not None and score >= policy.synthesis_min_score:
        c = min(1.0, policy.synthesis_weight * score)
        if c > 0:
            contributions.append(c)
            reasons.append((_synthesis_reason(policy, synthesis, c), c))

    codes: set[str] = set()
    severities: list[int] = []
    if metadata is not None:
        if policy.metadata_risk_weight > 0:
            contributions.append(min(1.0, policy.metadata_risk_weight * metadata.risk))
        for finding in metadata.findings:
            c = policy.finding_contribution(finding.code, finding.severity)
            contributions.append(c)
            codes.add(finding.code)
            severities.append(finding.severity)
            reason = common_pb2.Finding()
            reason.CopyFrom(finding)
            reason.source = finding.source or "metadata"
            reason.evidence["risk_contribution"] = _fmt(c)
            reasons.append((reason, c))

    for name, cause in missing.items():
        reasons.append((_missing_reason(name, cause), 0.0))

    survive = 1.0
    for c in contributions:
        survive *= 1.0 - c
    risk = 1.0 - survive
    decision = _decision_from_risk(policy, risk)
    for rule in policy.rules:
        if _fires(rule, codes, severities, score, missing):
            reasons.append((_rule_reason(rule), 0.0))  # after the evidence of equal severity
            decision = max(decision, rule.decision)
    # A rule-raised decision lifts the risk to that decision's threshold, so a caller that
    # thresholds on risk and one that reads the decision never disagree.
    risk = min(1.0, max(risk, policy.threshold_of(decision)))

    reasons.sort(key=lambda item: (-item[0].severity, -item[1]))
    return Verdict(decision, float(risk), tuple(r for r, _ in reasons), policy.version)
