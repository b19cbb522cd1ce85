"""The decision policy as data: parsed and validated once at start-up from YAML.

policy.yaml (next to this module) is the default and documents the semantics; a platform
points GatewayConfig.policy_path at its own copy. A policy that does not validate stops the
gateway at start-up with a message naming the bad key: a typo must never silently turn a
rule off in production.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
from collections.abc import Mapping
from typing import Any

import yaml

from imagetrust.v1 import common_pb2

DEFAULT_POLICY_PATH = pathlib.Path(__file__).with_name("policy.yaml")

DECISIONS = {"ALLOW": common_pb2.ALLOW, "REVIEW": common_pb2.REVIEW, "BLOCK": common_pb2.BLOCK}
SEVERITIES = {"INFO": common_pb2.INFO, "LOW": common_pb2.LOW, "MEDIUM": common_pb2.MEDIUM, "HIGH": common_pb2.HIGH}
BACKENDS = ("synthesis", "metadata")

_TOP_KEYS = {"version", "thresholds", "synthesis", "metadata", "severity", "findings", "rules", "platforms"}
_OVERRIDE_KEYS = {"thresholds", "synthesis", "metadata", "severity", "findings", "rules", "disable_rules"}
_CONDITION_KEYS = {"finding", "synthesis_score_at_least", "missing", "findings_at_least"}


class PolicyError(ValueError):
    """The policy file is malformed; the message names the offending key."""


@dataclasses.dataclass(frozen=True)
class Condition:
    """All set parts must hold for the rule to fire."""

    findings_any: tuple[str, ...] = ()  # any of these finding codes is present
    synthesis_score_at_least: float | None = None  # a real (not placeholder, not uncertain) score >= this
    missing_all: tuple[str, ...] = ()  # every one of these backends is missing
    severity_at_least: int = 0  # with count: at least `count` findings of this severity or more
    count: int = 0


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    decision: int  # common_pb2.Decision: the decision is raised to at least this
    when: Condition
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Policy:
    """One resolved policy (the default, or the default with a platform's overrides)."""

    version: str
    review_from: float  # risk in [0, 1]
    block_from: float  # risk in [0, 1]
    synthesis_weight: float
    synthesis_min_score: float
    metadata_risk_weight: float
    severity: Mapping[int, float]  # common_pb2.Severity -> contribution
    findings: Mapping[str, float]  # finding code -> contribution
    rules: tuple[Rule, ...]
    platform: str = ""  # "" for the default policy

    def finding_contribution(self, code: str, severity: int) -> float:
        if code in self.findings:
            return self.findings[code]
        return self.severity.get(severity, 0.0)

    def threshold_of(self, decision: int) -> float:
        thresholds: dict[int, float] = {common_pb2.BLOCK: self.block_from, common_pb2.REVIEW: self.review_from}
        return thresholds.get(decision, 0.0)


@dataclasses.dataclass(frozen=True)
class PolicySet:
    default: Policy
    platforms: Mapping[str, Policy]

    def for_platform(self, platform: str) -> Policy:
        """The policy for Context.platform (case-insensitive); the default for others."""
        return self.platforms.get(platform.strip().lower(), self.default) if platform else self.default


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PolicyError(f"{where}: expected a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise PolicyError(f"{where}: {value} is outside [0, 1]")
    return float(value)


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _only(keys: set[str], allowed: set[str], where: str) -> None:
    unknown = set(keys) - allowed
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _names(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise PolicyError(f"{where}: expected a name or a non-empty list of names, got {value!r}")
    return tuple(items)


def _condition(raw: Any, where: str) -> Condition:
    raw = _mapping(raw, where)
    if not raw:
        raise PolicyError(f"{where}: a rule needs at least one condition ({sorted(_CONDITION_KEYS)})")
    _only(set(raw), _CONDITION_KEYS, where)
    fields: dict[str, Any] = {}
    if "finding" in raw:
        fields["findings_any"] = _names(raw["finding"], f"{where}.finding")
    if "synthesis_score_at_least" in raw:
        fields["synthesis_score_at_least"] = _fraction(
            raw["synthesis_score_at_least"], f"{where}.synthesis_score_at_least"
        )
    if "missing" in raw:
        missing = _names(raw["missing"], f"{where}.missing")
        bad = set(missing) - set(BACKENDS)
        if bad:
            raise PolicyError(f"{where}.missing: unknown backend(s) {sorted(bad)}; known: {list(BACKENDS)}")
        fields["missing_all"] = missing
    if "findings_at_least" in raw:
        spec = _mapping(raw["findings_at_least"], f"{where}.findings_at_least")
        _only(set(spec), {"severity", "count"}, f"{where}.findings_at_least")
        if spec.get("severity") not in SEVERITIES:
            raise PolicyError(f"{where}.findings_at_least.severity: one of {list(SEVERITIES)}")
        count = spec.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise PolicyError(f"{where}.findings_at_least.count: a positive integer, got {count!r}")
        fields["severity_at_least"] = SEVERITIES[spec["severity"]]
        fields["count"] = count
    return Condition(**fields)


def _rule(raw: Any, where: str) -> Rule:
    raw = _mapping(raw, where)
    _only(set(raw), {"name", "message", "when", "decision"}, where)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyError(f"{where}: every rule needs a name")
    if raw.get("decision") not in ("REVIEW", "BLOCK"):
        raise PolicyError(f"{where} ({name}).decision: REVIEW or BLOCK, got {raw.get('decision')!r}")
    return Rule(
        name,
        DECISIONS[raw["decision"]],
        _condition(raw.get("when"), f"{where} ({name}).when"),
        str(raw.get("message", "")),
    )


def _resolve(raw: dict, version: str, platform: str) -> Policy:
    """Builds one Policy from a fully merged raw mapping."""
    thresholds = _mapping(raw.get("thresholds"), "thresholds")
    _only(set(thresholds), {"review", "block"}, "thresholds")
    review = _fraction(thresholds.get("review"), "thresholds.review")
    block = _fraction(thresholds.get("block"), "thresholds.block")
    if not 0.0 < review <= block:
        raise PolicyError(f"thresholds: need 0 < review ({review}) <= block ({block})")
    synthesis = _mapping(raw.get("synthesis"), "synthesis")
    _only(set(synthesis), {"weight", "min_score"}, "synthesis")
    metadata = _mapping(raw.get("metadata"), "metadata")
    _only(set(metadata), {"risk_weight"}, "metadata")
    severity = _mapping(raw.get("severity"), "severity")
    _only(set(severity), set(SEVERITIES), "severity")
    findings = _mapping(raw.get("findings"), "findings")
    for code in findings:
        if not isinstance(code, str) or code.upper() != code or " " in code:
            raise PolicyError(f"findings: codes are UPPER_SNAKE strings, got {code!r}")
    rules: dict[str, Rule] = {}
    for i, item in enumerate(raw.get("rules") or []):
        rule = _rule(item, f"rules[{i}]")
        rules[rule.name] = rule  # a platform's rule with a default rule's name replaces it
    for name in raw.get("disable_rules") or []:
        if name not in rules:
            raise PolicyError(f"disable_rules: no rule named {name!r}; rules: {sorted(rules)}")
        del rules[name]
    return Policy(
        version=f"{version}+{platform}" if platform else version,
        review_from=review,
        block_from=block,
        synthesis_weight=_fraction(synthesis.get("weight", 1.0), "synthesis.weight"),
        synthesis_min_score=_fraction(synthesis.get("min_score", 0.0), "synthesis.min_score"),
        metadata_risk_weight=_fraction(metadata.get("risk_weight", 0.0), "metadata.risk_weight"),
        severity={SEVERITIES[k]: _fraction(v, f"severity.{k}") for k, v in severity.items()},
        findings={k: _fraction(v, f"findings.{k}") for k, v in findings.items()},
        rules=tuple(rules.values()),
        platform=platform,
    )


def _merge(base: dict, override: dict) -> dict:
    """base with a platform's override applied: mappings merge key by key, rules append."""
    merged = copy.deepcopy(base)
    for key in ("thresholds", "synthesis", "metadata", "severity", "findings"):
        if key in override:
            merged[key] = {**_mapping(merged.get(key), key), **_mapping(override[key], key)}
    merged["rules"] = list(merged.get("rules") or []) + list(override.get("rules") or [])
    merged["disable_rules"] = list(override.get("disable_rules") or [])
    return merged


def parse(raw: Any) -> PolicySet:
    raw = _mapping(raw, "policy")
    _only(set(raw), _TOP_KEYS, "policy")
    version = raw.get("version")
    if not isinstance(version, str) or not version:
        raise PolicyError("version: a non-empty string is required (it is returned with every verdict)")
    base = {k: v for k, v in raw.items() if k != "platforms"}
    default = _resolve(base, version, "")
    platforms = {}
    for name, override in _mapping(raw.get("platforms"), "platforms").items():
        where = f"platforms.{name}"
        override = _mapping(override, where)
        _only(set(override), _OVERRIDE_KEYS, where)
        try:
            platforms[str(name).lower()] = _resolve(_merge(base, override), version, str(name).lower())
        except PolicyError as exc:
            raise PolicyError(f"{where}: {exc}") from None
    return PolicySet(default, platforms)


def load_policy(path: str | pathlib.Path = "") -> PolicySet:
    """Reads and validates a policy file ('' : the built-in default)."""
    path = pathlib.Path(path) if path else DEFAULT_POLICY_PATH
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy {path} is not valid YAML: {exc}") from exc
    try:
        return parse(raw)
    except PolicyError as exc:
        raise PolicyError(f"policy {path}: {exc}") from None
