"""Every optional component renders on top of each overlay with real kustomize and
validates against the Kubernetes API schemas (the overlays alone are tests/deploy/test_render)."""

from __future__ import annotations

import os
import pathlib

import kubernetes_validate
import pytest
import yaml

from .manifests import K8S, OVERLAYS, kustomize_commands, run_kustomize
from .test_render import CRD_KINDS, KUBERNETES_VERSIONS

COMPONENTS = sorted(p.name for p in (K8S / "components").iterdir() if (p / "kustomization.yaml").exists())


def _included(overlay: str) -> set[str]:
    kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    return {pathlib.PurePosixPath(c).name for c in kustomization.get("components", [])}


# Each component on each overlay that does not already include it (those render in test_render).
COMBINATIONS = [(o, c) for o in OVERLAYS for c in COMPONENTS if c not in _included(o)]


def render_with(overlay: str, component: str, tmp_path: pathlib.Path) -> list[dict]:
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # Relative: kustomize refuses absolute paths to other kustomizations.
                "resources": [os.path.relpath(K8S / "overlays" / overlay, tmp_path)],
                "components": [os.path.relpath(K8S / "components" / component, tmp_path)],
            }
        )
    )
    command = next(iter(kustomize_commands().values()))
    return [doc for doc in yaml.safe_load_all(run_kustomize(command, tmp_path)) if doc]


def _env(docs: list[dict], name: str) -> dict[str, str]:
    (config,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(f"{name}-config")]
    return config["data"]


@pytest.mark.parametrize("overlay, component", COMBINATIONS)
def test_every_component_renders_and_validates(overlay, component, tmp_path):
    docs = render_with(overlay, component, tmp_path)
    checked = 0
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)
        checked += 1
    assert checked >= 15


def test_tracing_sets_the_otlp_endpoint_for_every_service(tmp_path):
    docs = render_with("dev", "tracing", tmp_path)
    for name in ("gateway", "synthesis", "metadata"):
        env = _env(docs, name)
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-collector.")
        assert env["IMAGETRUST_LOG_FORMAT"] == "text"  # the overlay's own settings are kept
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "otlp-egress")
    assert policy["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 4317}]


def test_external_redis_replaces_the_in_cluster_pod_with_a_sentinel_url(tmp_path):
    from services.metadata.registry.redis_url import parse_sentinel

    docs = render_with("prod-gpu", "external-redis", tmp_path)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("StatefulSet", "redis") not in names and ("Service", "redis") not in names
    assert ("NetworkPolicy", "redis") not in names and ("NetworkPolicy", "metadata-external-redis") in names
    url = _env(docs, "metadata")["IMAGETRUST_REDIS_URL"]
    assert parse_sentinel(url)["service_name"] == "mymaster"  # a URL the registry accepts
    metadata = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "metadata")
    refs = [
        e["configMapRef"]["name"]
        for c in metadata["spec"]["template"]["spec"]["containers"]
        for e in c.get("envFrom", [])
    ]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("metadata-config"))
    assert config["metadata"]["name"] in refs  # the pods read the merged config
