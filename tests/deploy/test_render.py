"""Every overlay renders with real kustomize and validates against the Kubernetes API schemas."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml

from .manifests import K8S, OVERLAYS, kustomize_commands, render, render_text, run_kustomize

# The oldest Kubernetes the manifests target (lifecycle.preStop.sleep is on by default
# from 1.30), and the newest schema kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# Prometheus Operator kinds: no schema in kubernetes-validate; tests/deploy/test_monitoring
# checks them with promtool and structural assertions instead.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.mark.parametrize("path", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_every_kustomize_renders_the_same(path):
    outputs = {name: run_kustomize(cmd, K8S / path) for name, cmd in kustomize_commands().items()}
    first = next(iter(outputs.values()))
    assert "kind: Deployment" in first
    for name, text in outputs.items():
        assert text == first, f"{name} renders {path} differently from {next(iter(outputs))}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_schema_valid_strict(overlay, version):
    checked = 0
    for doc in render(overlay):
        if doc["kind"] in CRD_KINDS:
            continue
        # strict: unknown fields (a typo such as `readinesProbe`) are errors too.
        kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked >= 20


def test_validator_rejects_a_broken_manifest():
    """Negative control: the validation above would catch a typo and a wrong type."""
    deployment = next(d for d in render("dev") if d["kind"] == "Deployment")
    typo = copy.deepcopy(deployment)
    container = typo["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES_VERSIONS[-1], strict=True)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "fifty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, KUBERNETES_VERSIONS[-1], strict=True)


def test_render_is_plain_yaml_without_leftover_placeholders(overlay):
    text = render_text(overlay)
    assert "$(" not in text and "${" not in text
    names = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in yaml.safe_load_all(text) if d]
    assert len(names) == len(set(names)), "duplicate objects"
