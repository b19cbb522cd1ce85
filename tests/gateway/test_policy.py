"""The decision policy, rule by rule, on constructed backend answers (no servers needed).

The examples of docs/gateway.md are the EXAMPLES below; test_documented_examples keeps the
document honest.
"""

from __future__ import annotations

import pathlib

import pytest
import yaml

from imagetrust.v1 import common_pb2, metadata_pb2, synthesis_pb2
from services.gateway.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse
from services.gateway.verdict import decide

ALLOW, REVIEW, BLOCK = common_pb2.ALLOW, common_pb2.REVIEW, common_pb2.BLOCK
POLICIES = load_policy()
DEFAULT = POLICIES.default


def synth(score: float, placeholder: bool = False) -> synthesis_pb2.DetectResponse:
    return synthesis_pb2.DetectResponse(score=score, global_score=score, model_version="m-1", placeholder=placeholder)


def meta(*findings: tuple[str, int], risk: float = 0.0) -> metadata_pb2.AnalyzeResponse:
    return metadata_pb2.AnalyzeResponse(
        risk=risk,
        findings=[common_pb2.Finding(code=c, severity=s, message=c.lower(), source="metadata") for c, s in findings],
    )


def codes(verdict) -> list[str]:
    return [r.code for r in verdict.reasons]


def raw_default() -> dict:
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text())


# --- loading -----------------------------------------------------------------------------


def test_default_policy_loads_with_version_and_platforms():
    assert DEFAULT.version == "2026-11.1"
    assert 0 < DEFAULT.review_from <= DEFAULT.block_from <= 1
    assert POLICIES.for_platform("chat").version == "2026-11.1+chat"
    assert POLICIES.for_platform("CHAT ").platform == "chat"  # case and spaces ignored
    assert POLICIES.for_platform("unknown-app") is DEFAULT
    assert POLICIES.for_platform("") is DEFAULT


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p.update(colour="red"), "unknown key(s) ['colour']"),
        (lambda p: p["thresholds"].update(review=1.5), "thresholds.review: 1.5 is outside [0, 1]"),
        (lambda p: p["thresholds"].update(review=0.9, block=0.8), "need 0 < review (0.9) <= block (0.8)"),
        (lambda p: p["findings"].update(bad_code=0.1), "UPPER_SNAKE"),
        (lambda p: p["severity"].update(CRITICAL=0.9), "unknown key(s) ['CRITICAL']"),
        (lambda p: p["rules"][0].update(decision="ALLOW"), "REVIEW or BLOCK"),
        (lambda p: p["rules"][0].update(when={"finding": "X", "sellers": 2}), "unknown key(s) ['sellers']"),
        (lambda p: p["rules"][0].update(when={"missing": ["cache"]}), "unknown backend(s) ['cache']"),
        (lambda p: p["rules"][0].update(when={}), "at least one condition"),
        (lambda p: p.pop("version"), "version: a non-empty string is required"),
        (
            lambda p: p["platforms"]["chat"].update(disable_rules=["no-such-rule"]),
            "platforms.chat: disable_rules: no rule named",
        ),
        (lambda p: p["platforms"]["chat"].update(version="x"), "platforms.chat: unknown key(s) ['version']"),
    ],
)
def test_invalid_policies_are_refused_with_the_bad_key_named(mutate, message):
    raw = raw_default()
    mutate(raw)
    with pytest.raises(PolicyError) as info:
        parse(raw)
    assert message in str(info.value)


def test_unreadable_and_malformed_files_are_refused(tmp_path: pathlib.Path):
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)


# --- one test per rule of the default policy ----------------------------------------------


def test_thresholds_give_allow_review_block():
    assert decide(DEFAULT, synth(0.45), meta(), {}).decision == ALLOW  # under min_score
    assert decide(DEFAULT, synth(0.61), meta(), {}).decision == ALLOW  # 0.49: counts, not alone
    assert decide(DEFAULT, synth(0.65), meta(), {}).decision == REVIEW  # 0.52
    strong = meta(
        ("THUMBNAIL_CONTENT_MISMATCH", common_pb2.HIGH),
        ("DEVICE_RESOLUTION_MISMATCH", common_pb2.MEDIUM),
        ("DATE_ORDER_INVALID", common_pb2.MEDIUM),
    )
    assert decide(DEFAULT, synth(0.65), strong, {}).decision == BLOCK  # 1 - 0.48 x 0.55 x 0.7 x 0.75 = 0.86
    assert decide(DEFAULT, None, strong, {}).decision == REVIEW  # 0.71: the score tips it over


def test_synthesis_contributes_weight_times_score_with_its_reason():
    verdict = decide(DEFAULT, synth(0.95), meta(), {})
    assert verdict.risk == pytest.approx(DEFAULT.synthesis_weight * 0.95)
    (reason,) = verdict.reasons
    assert reason.code == "SYNTHESIS_SCORE" and reason.source == "synthesis"
    assert reason.evidence["score"] == "0.950"
    assert reason.evidence["risk_contribution"] == f"{DEFAULT.synthesis_weight * 0.95:.3f}"
    assert reason.evidence["model_version"] == "m-1"


def test_synthesis_below_min_score_contributes_nothing():
    verdict = decide(DEFAULT, synth(DEFAULT.synthesis_min_score - 0.01), meta(), {})
    assert verdict.risk == 0.0 and verdict.decision == ALLOW and codes(verdict) == []


def test_placeholder_synthesis_never_contributes_and_says_so():
    verdict = decide(DEFAULT, synth(0.99, placeholder=True), meta(), {})
    assert verdict.risk == 0.0 and verdict.decision == ALLOW
    assert codes(verdict) == ["SYNTHESIS_PLACEHOLDER"]
    assert "placeholder" in verdict.reasons[0].message and verdict.reasons[0].source == "gateway"
    # nor can it trigger the synthesis rules
    reused = decide(DEFAULT, synth(0.99, placeholder=True), meta(("REUSED_BY_OTHER_SELLER", common_pb2.HIGH)), {})
    assert reused.decision == REVIEW  # the reuse rule, not reused-and-manipulated


def test_finding_contribution_by_code_overrides_severity():
    gps = decide(DEFAULT, None, meta(("GPS_PRESENT", common_pb2.INFO)), {"synthesis": "test"})
    assert gps.risk == 0.0
    resave = decide(DEFAULT, None, meta(("PLATFORM_RESAVE", common_pb2.HIGH)), {})
    assert resave.risk == pytest.approx(0.20)  # the code's 0.20, not HIGH's 0.35
    assert resave.reasons[0].evidence["risk_contribution"] == "0.200"


def test_unknown_finding_codes_use_the_severity_default():
    for severity, expected in ((common_pb2.LOW, 0.05), (common_pb2.MEDIUM, 0.15), (common_pb2.HIGH, 0.35)):
        verdict = decide(DEFAULT, None, meta(("SOMETHING_NEW", severity)), {})
        assert verdict.risk == pytest.approx(expected)


def test_contributions_combine_as_noisy_or_and_stay_in_range():
    verdict = decide(
        DEFAULT,
        synth(0.6),
        meta(("THUMBNAIL_CONTENT_MISMATCH", common_pb2.HIGH), ("DEVICE_RESOLUTION_MISMATCH", common_pb2.MEDIUM)),
        {},
    )
    assert verdict.risk == pytest.approx(1 - (1 - DEFAULT.synthesis_weight * 0.6) * (1 - 0.45) * (1 - 0.3))
    assert verdict.decision == REVIEW
    many = decide(DEFAULT, synth(1.0), meta(*[("THUMBNAIL_CONTENT_MISMATCH", common_pb2.HIGH)] * 20), {})
    assert 0.0 <= many.risk <= 1.0


def test_metadata_own_risk_is_ignored_by_default_and_weighted_when_configured():
    assert decide(DEFAULT, None, meta(risk=0.9), {}).risk == 0.0
    raw = raw_default()
    raw["metadata"]["risk_weight"] = 0.5
    weighted = parse(raw).default
    assert decide(weighted, None, meta(risk=0.9), {}).risk == pytest.approx(0.45)


def test_rule_reused_by_other_seller_forces_review_and_lifts_risk():
    verdict = decide(DEFAULT, synth(0.0), meta(("REUSED_BY_OTHER_SELLER", common_pb2.HIGH)), {})
    assert verdict.decision == REVIEW
    assert verdict.risk == pytest.approx(max(0.6, DEFAULT.review_from))
    rule = next(r for r in verdict.reasons if r.code == "POLICY_RULE")
    assert rule.evidence["rule"] == "reused-by-other-seller" and rule.evidence["decision"] == "REVIEW"


def test_rule_reused_and_manipulated_blocks():
    verdict = decide(DEFAULT, synth(0.95), meta(("REUSED_BY_OTHER_SELLER", common_pb2.HIGH)), {})
    assert verdict.decision == BLOCK
    assert verdict.risk >= DEFAULT.block_from
    fired = {r.evidence["rule"] for r in verdict.reasons if r.code == "POLICY_RULE"}
    assert fired == {"reused-by-other-seller", "reused-and-manipulated"}


def test_no_default_rule_blocks_on_the_synthesis_score_alone():
    """The score alone is one signal: even 1.0, which the shipped model never gives (its top
    is ~0.72), reaches REVIEW at most."""
    verdict = decide(DEFAULT, synth(1.0), meta(), {})
    assert verdict.decision == REVIEW and verdict.risk == pytest.approx(DEFAULT.synthesis_weight)
    assert not [r for r in verdict.reasons if r.code == "POLICY_RULE"]


def test_a_synthesis_rule_can_block_on_its_own_when_a_policy_adds_one():
    raw = raw_default()
    raw["thresholds"]["block"] = 0.99  # so only the rule can block at 0.96
    raw["rules"].append(
        {
            "name": "synthesis-certain",
            "message": "the model is all but certain",
            "when": {"synthesis_score_at_least": 0.95},
            "decision": "BLOCK",
        }
    )
    policy = parse(raw).default
    verdict = decide(policy, synth(0.96), meta(), {})
    assert verdict.decision == BLOCK
    assert verdict.risk == pytest.approx(0.99)
    assert decide(policy, synth(0.94), meta(), {}).decision == REVIEW


def test_rule_nothing_checked_reviews_only_when_every_backend_is_missing():
    both = decide(DEFAULT, None, None, {"synthesis": "down", "metadata": "down"})
    assert both.decision == REVIEW
    assert codes(both).count("BACKEND_UNAVAILABLE") == 2
    one = decide(DEFAULT, None, meta(), {"synthesis": "no answer within its budget of 100 ms"})
    assert one.decision == ALLOW
    reason = one.reasons[0]
    assert reason.code == "BACKEND_UNAVAILABLE" and reason.evidence == {
        "backend": "synthesis",
        "cause": "no answer within its budget of 100 ms",
    }


def test_rules_never_lower_a_decision():
    verdict = decide(
        DEFAULT,
        synth(0.0),
        meta(
            ("REUSED_BY_OTHER_SELLER", common_pb2.HIGH),
            ("THUMBNAIL_CONTENT_MISMATCH", common_pb2.HIGH),
            ("DEVICE_RESOLUTION_MISMATCH", common_pb2.MEDIUM),
            ("DATE_ORDER_INVALID", common_pb2.MEDIUM),
        ),
        {},
    )
    fired = {r.evidence["rule"] for r in verdict.reasons if r.code == "POLICY_RULE"}
    assert fired == {"reused-by-other-seller"}  # a REVIEW rule ...
    assert verdict.decision == BLOCK  # ... while the risk (0.88) says BLOCK


def test_reasons_strongest_first():
    verdict = decide(
        DEFAULT,
        synth(0.3),
        meta(
            ("GPS_PRESENT", common_pb2.INFO),
            ("REUSED_BY_OTHER_SELLER", common_pb2.HIGH),
            ("EXIF_STRIPPED", common_pb2.LOW),
        ),
        {},
    )
    severities = [r.severity for r in verdict.reasons]
    assert severities == sorted(severities, reverse=True)
    assert codes(verdict)[0] == "REUSED_BY_OTHER_SELLER"  # HIGH; the REVIEW rule's reason is MEDIUM
    assert verdict.reasons[-1].code == "GPS_PRESENT"


# --- platform overrides -------------------------------------------------------------------


def test_platform_chat_lowers_thresholds_and_changes_a_code():
    chat = POLICIES.for_platform("chat")
    resaved = meta(("EXIF_STRIPPED", common_pb2.LOW), ("PLATFORM_RESAVE", common_pb2.MEDIUM))
    assert decide(DEFAULT, synth(0.45), resaved, {}).decision == ALLOW  # 0.28
    verdict = decide(chat, synth(0.45), resaved, {})
    assert verdict.decision == REVIEW and verdict.policy_version == "2026-11.1+chat"  # 0.415 >= 0.40
    assert decide(chat, None, meta(("PLATFORM_RESAVE", common_pb2.MEDIUM)), {}).risk == pytest.approx(0.35)
    # everything not overridden is inherited
    assert chat.findings["REUSED_BY_OTHER_SELLER"] == DEFAULT.findings["REUSED_BY_OTHER_SELLER"]
    assert [r.name for r in chat.rules] == [r.name for r in DEFAULT.rules]


def test_platform_pro_seller_disables_a_rule_and_adds_one():
    pro = POLICIES.for_platform("pro-seller")
    names = [r.name for r in pro.rules]
    assert "reused-by-other-seller" not in names and "pro-reused-high-risk" in names
    assert decide(pro, None, meta(("EDITING_SOFTWARE", common_pb2.MEDIUM)), {}).risk == 0.0
    alone = decide(pro, synth(0.0), meta(("REUSED_BY_OTHER_SELLER", common_pb2.HIGH)), {})
    assert alone.decision == REVIEW  # from its risk 0.6 alone
    assert "POLICY_RULE" not in codes(alone)  # one HIGH finding is not two MEDIUM-or-more
    backed = decide(
        pro,
        synth(0.0),
        meta(("REUSED_BY_OTHER_SELLER", common_pb2.HIGH), ("DEVICE_RESOLUTION_MISMATCH", common_pb2.MEDIUM)),
        {},
    )
    assert backed.decision >= REVIEW
    assert [r.evidence["rule"] for r in backed.reasons if r.code == "POLICY_RULE"] == ["pro-reused-high-risk"]


def test_platform_rule_with_a_default_rules_name_replaces_it():
    raw = raw_default()
    raw["platforms"]["strict"] = {
        "rules": [
            {"name": "reused-by-other-seller", "when": {"finding": "REUSED_BY_OTHER_SELLER"}, "decision": "BLOCK"}
        ]
    }
    strict = parse(raw).for_platform("strict")
    assert [r.name for r in strict.rules].count("reused-by-other-seller") == 1
    assert decide(strict, None, meta(("REUSED_BY_OTHER_SELLER", common_pb2.HIGH)), {}).decision == BLOCK


# --- the examples of docs/gateway.md --------------------------------------------------------

EXAMPLES = [
    # (name, platform, synthesis, metadata findings, missing, decision, risk)
    ("camera photo", "", synth(0.05), [("GPS_PRESENT", common_pb2.INFO)], {}, ALLOW, 0.0),
    ("camera photo the model doubts", "", synth(0.45), [], {}, ALLOW, 0.0),
    (
        "web re-save",
        "",
        synth(0.25),
        [("EXIF_STRIPPED", common_pb2.LOW), ("PLATFORM_RESAVE", common_pb2.MEDIUM)],
        {},
        ALLOW,
        0.28,
    ),
    (
        "edited, odd size",
        "",
        synth(0.40),
        [("EDITING_SOFTWARE", common_pb2.MEDIUM), ("DEVICE_RESOLUTION_MISMATCH", common_pb2.MEDIUM)],
        {},
        ALLOW,
        0.44,
    ),
    (
        "edited, odd size, thumbnail differs",
        "",
        synth(0.40),
        [
            ("EDITING_SOFTWARE", common_pb2.MEDIUM),
            ("DEVICE_RESOLUTION_MISMATCH", common_pb2.MEDIUM),
            ("THUMBNAIL_CONTENT_MISMATCH", common_pb2.HIGH),
        ],
        {},
        REVIEW,
        0.692,
    ),
    ("reused photo", "", synth(0.10), [("REUSED_BY_OTHER_SELLER", common_pb2.HIGH)], {}, REVIEW, 0.6),
    ("composite", "", synth(0.68), [], {}, REVIEW, 0.544),
    ("reused + manipulated", "", synth(0.62), [("REUSED_BY_OTHER_SELLER", common_pb2.HIGH)], {}, BLOCK, 0.85),
    ("synthesis down", "", None, [("EXIF_STRIPPED", common_pb2.LOW)], {"synthesis": "down"}, ALLOW, 0.1),
    (
        "web re-save in chat",
        "chat",
        synth(0.25),
        [("EXIF_STRIPPED", common_pb2.LOW), ("PLATFORM_RESAVE", common_pb2.MEDIUM)],
        {},
        REVIEW,
        0.415,
    ),
]


@pytest.mark.parametrize(
    "name, platform, synthesis, findings, missing, decision, risk", EXAMPLES, ids=[e[0] for e in EXAMPLES]
)
def test_documented_examples(name, platform, synthesis, findings, missing, decision, risk):
    verdict = decide(POLICIES.for_platform(platform), synthesis, meta(*findings), missing)
    assert verdict.decision == decision
    assert verdict.risk == pytest.approx(risk, abs=0.001)


def test_uncertain_synthesis_never_contributes_and_says_so():
    uncertain = synthesis_pb2.DetectResponse(
        score=0.0, model_version="c-1", uncertain=True, valid_patches=3, method="consistency"
    )
    verdict = decide(DEFAULT, uncertain, meta(), {})
    assert verdict.risk == 0.0 and verdict.decision == ALLOW
    assert codes(verdict) == ["SYNTHESIS_UNCERTAIN"]
    (reason,) = verdict.reasons
    assert reason.severity == common_pb2.INFO and reason.source == "gateway"
    assert reason.evidence["valid_patches"] == "3" and reason.evidence["method"] == "consistency"
    # Even a high score on an uncertain answer is ignored, rules included.
    uncertain.score = 0.99
    reused = decide(DEFAULT, uncertain, meta(("REUSED_BY_OTHER_SELLER", common_pb2.HIGH)), {})
    assert reused.decision == REVIEW and "SYNTHESIS_SCORE" not in codes(reused)


def test_synthesis_score_evidence_names_method_and_patches():
    judged = synthesis_pb2.DetectResponse(score=0.95, model_version="c-1", valid_patches=321, method="consistency")
    (reason,) = decide(DEFAULT, judged, meta(), {}).reasons
    assert reason.evidence["method"] == "consistency" and reason.evidence["valid_patches"] == "321"
    assert "consistency, 321 patches judged" in reason.message
    (cnn,) = decide(DEFAULT, synth(0.95), meta(), {}).reasons  # a server without `method`: a CNN
    assert cnn.evidence["method"] == "cnn" and cnn.evidence["valid_patches"] == "0"
