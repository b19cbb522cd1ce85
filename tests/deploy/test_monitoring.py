"""Monitoring objects: alert rules checked and unit-tested by promtool, scrape coverage,
runbooks, and the metric names the rules use against a real server's /metrics."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import urllib.request

import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .manifests import K8S, REPO, containers, named, of_kind, render, require_binary, workloads

MONITORING = K8S / "components" / "monitoring"
AUTOSCALING = K8S / "components" / "synthesis-queue-autoscaling"
ALERT_TESTS = pathlib.Path(__file__).parent / "alerts_test.yaml"
SRE_GUIDE = REPO / "docs" / "sre.md"
PROMTOOL_HINT = "apt-get install prometheus (scripts/setup.sh does this; it ships promtool)"
# Metrics the rules use that the ImageTrust servers do not export themselves.
EXTERNAL_METRICS = {
    "up",  # Prometheus' own scrape health
    "redis_up",  # redis_exporter
    "imagetrust_synthesis_queue_depth",  # the synthesis batcher's gauge (synthesis service)
}
PROMQL_KEYWORDS = {"sum", "by", "rate", "on", "or", "and", "max", "avg", "absent", "histogram_quantile", "le"}


def _rule_groups() -> list[dict]:
    doc = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    return doc["spec"]["groups"]


def _write_rules(tmp_path: pathlib.Path) -> pathlib.Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": _rule_groups()}, sort_keys=False))
    return rules


def test_promtool_checks_the_rules(tmp_path):
    promtool = require_binary("promtool", PROMTOOL_HINT)
    rules = _write_rules(tmp_path)
    proc = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_unit_tests_every_alert(tmp_path):
    promtool = require_binary("promtool", PROMTOOL_HINT)
    _write_rules(tmp_path)
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    proc = subprocess.run(
        [promtool, "test", "rules", ALERT_TESTS.name], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tested = set(re.findall(r"alertname: (\w+)", ALERT_TESTS.read_text()))
    alerts = {r["alert"] for g in _rule_groups() for r in g["rules"] if "alert" in r}
    assert alerts == tested, f"alerts without a unit test: {sorted(alerts - tested)}"
    assert {
        "ImageTrustHighErrorRate",
        "ImageTrustCheckLatencyHigh",
        "ImageTrustSynthesisQueueBacklog",
        "ImageTrustRedisUnavailable",
        "ImageTrustRegistryUnavailable",
        "ImageTrustBackendDegraded",
    } <= alerts


def test_every_alert_has_a_runbook_section():
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in SRE_GUIDE.read_text().splitlines()
        if line.startswith("#")
    }
    for group in _rule_groups():
        for rule in group["rules"]:
            if "alert" in rule:
                url = rule["annotations"]["runbook_url"]
                assert url.startswith("docs/sre.md#")
                assert url.split("#", 1)[1] in headings, f"{rule['alert']}: no runbook heading in docs/sre.md"


def test_servicemonitor_scrapes_every_metrics_port_once():
    docs = render("prod-gpu")
    monitor = named(docs, "ServiceMonitor", "imagetrust")
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    selected = [s for s in of_kind(docs, "Service") if selector.items() <= s["metadata"].get("labels", {}).items()]
    for service in selected:
        assert service["spec"].get("clusterIP") != "None", "a headless Service would double-scrape"
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    scraped_apps = {s["spec"]["selector"]["app.kubernetes.io/name"] for s in selected}
    for w in workloads(docs):
        if any(p["name"] == "metrics" for c in containers(w) for p in c["ports"]):
            assert w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] in scraped_apps


def test_adapter_rule_serves_the_metric_the_hpa_reads():
    adapter = yaml.safe_load((AUTOSCALING / "prometheus-adapter-rules.yaml").read_text())
    (rule,) = adapter["rules"]["custom"]
    hpa = yaml.safe_load((AUTOSCALING / "hpa.yaml").read_text())
    name = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert rule["name"]["as"] == name
    assert rule["seriesQuery"].startswith(name + "{")
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}


def test_rules_use_metrics_the_servers_export(server_factory, tmp_path):
    """Scrape a real gateway (after a real call) and a real metadata server: every ImageTrust
    metric the rules name exists."""
    gateway = server_factory("gateway", synthesis_addr="127.0.0.1:1", metadata_addr="127.0.0.1:1")
    metadata = server_factory("metadata", registry_path=str(tmp_path / "registry.sqlite3"))
    with gateway.channel() as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    exported: set[str] = set()
    for server in (gateway, metadata):
        with urllib.request.urlopen(server.metrics_url, timeout=5) as response:
            exported |= set(re.findall(r"^([a-zA-Z_:][\w:]*?)(?:\{| )", response.read().decode(), re.M))
    exprs = " ".join(r["expr"] for g in _rule_groups() for r in g["rules"])
    recorded = {r["record"] for g in _rule_groups() for r in g["rules"] if "record" in r}
    used = set(re.findall(r"\b([a-z_][a-z0-9_:]*)\s*(?:\{|\[)", exprs)) - recorded - PROMQL_KEYWORDS
    assert {"grpc_server_handled_total", "grpc_server_handling_seconds_bucket"} <= used
    for metric in used - EXTERNAL_METRICS:
        assert metric in exported, f"rules use {metric}, which the servers do not export"
