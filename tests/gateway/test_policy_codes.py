"""The policy may only name finding codes that exist: a typo would silently fall back to
the severity default. Every code is documented in the one table, docs/findings.md."""

from __future__ import annotations

import re

import yaml

from tests.helpers.paths import REPO

FINDINGS_DOC = REPO / "docs" / "findings.md"
POLICY = REPO / "services" / "gateway" / "policy.yaml"


def _documented_codes() -> set[str]:
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", FINDINGS_DOC.read_text(), re.MULTILINE))


def _policy_codes() -> set[str]:
    policy = yaml.safe_load(POLICY.read_text())
    codes = set(policy.get("findings", {}))
    for block in policy.get("platforms", {}).values():
        codes |= set(block.get("findings", {}))
    for rule in policy.get("rules", []):
        if "finding" in rule.get("when", {}):
            codes.add(rule["when"]["finding"])
    return codes


def test_every_policy_code_is_a_documented_finding() -> None:
    undocumented = _policy_codes() - _documented_codes()
    assert not undocumented, f"policy.yaml names codes no service emits: {sorted(undocumented)}"


def test_every_code_the_code_emits_is_documented() -> None:
    emitted = set()
    for path in (REPO / "services").rglob("*.py"):
        emitted |= set(re.findall(r'code="([A-Z][A-Z0-9_]+)"', path.read_text()))
    for path in (REPO / "services" / "metadata" / "data").glob("*.yaml"):
        emitted |= set(re.findall(r"\b(?:code): *([A-Z][A-Z0-9_]+)", path.read_text()))
    assert emitted, "found no finding codes in services/: the scan is broken"
    missing = emitted - _documented_codes()
    assert not missing, f"codes emitted but not in docs/findings.md: {sorted(missing)}"


def test_every_metadata_finding_has_a_policy_weight() -> None:
    # Each metadata code gets an explicit, reviewed contribution, not the severity default.
    gateway_only = {
        "BACKEND_UNAVAILABLE",
        "SYNTHESIS_SCORE",
        "SYNTHESIS_PLACEHOLDER",
        "SYNTHESIS_UNCERTAIN",
        "POLICY_RULE",
    }
    unweighted = _documented_codes() - gateway_only - _policy_codes()
    assert not unweighted, f"findings without a policy weight: {sorted(unweighted)}"
