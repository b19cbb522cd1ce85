"""Invariants of the rendered manifests: hardening, probes, resources, GPUs, policy, scaling."""

from __future__ import annotations

import dataclasses
import re

import pytest

from services.common import config as config_mod
from services.common.server import SETTLE_S
from services.service_specs import SERVICES

from .manifests import containers, named, of_kind, render, workloads

SERVICE_NAMES = ("gateway", "metadata", "synthesis")
FULL_NAMES = {
    "gateway": "imagetrust.v1.ImageTrust",
    "metadata": "imagetrust.v1.MetadataAnalyzer",
    "synthesis": "imagetrust.v1.SynthesisDetector",
}
BACKEND_PORTS = {"metadata": 50052, "synthesis": 50053}
MONITORING_NAMESPACE = "monitoring"


def _labels_of(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


def _config_of(docs: list[dict], name: str) -> dict:
    maps = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith(f"{name}-config")]
    assert len(maps) == 1, f"one ConfigMap {name}-config expected"
    return maps[0]["data"]


# ----- every container ---------------------------------------------------------------


def test_every_container_has_probes_and_resource_limits(docs):
    for w in workloads(docs):
        for c in containers(w):
            where = f"{w['metadata']['name']}/{c['name']}"
            assert "readinessProbe" in c and "livenessProbe" in c, f"{where}: probes missing"
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{where}: {kind} incomplete"


def test_every_container_is_hardened(docs):
    for w in workloads(docs):
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod.get("automountServiceAccountToken") is False, "pods call no Kubernetes API"
        assert pod.get("hostNetwork") is not True and pod.get("hostPID") is not True
        for c in containers(w):
            where = f"{w['metadata']['name']}/{c['name']}"
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            assert sc.get("privileged") is not True, where
            uid = sc.get("runAsUser", pod["securityContext"].get("runAsUser"))
            assert isinstance(uid, int) and uid > 0, f"{where}: numeric non-root uid required"
            # Read-only root: anything writing to /tmp needs the emptyDir.
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if c["name"] in (*SERVICE_NAMES, "redis"):
                assert "/tmp" in mounts, f"{where}: /tmp emptyDir missing"


def test_no_latest_or_untagged_images(docs):
    for w in workloads(docs):
        for c in containers(w):
            image = c["image"]
            assert re.fullmatch(r"[\w.\-/:]+:[\w.\-]+(@sha256:[0-9a-f]{64})?", image), f"unpinned image {image}"
            assert not image.endswith(":latest") and ":latest@" not in image, image
            assert c.get("imagePullPolicy") != "Always" or "@sha256:" in image


# ----- the three services --------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_native_grpc_probes_on_the_service_port(docs, name):
    spec_config = SERVICES[name].config_class
    port = next(f.default for f in dataclasses.fields(spec_config) if f.name == "port")
    deployment = named(docs, "Deployment", name)
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert c["args"] == [name]
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["grpc"] == port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == port, f"{name} {probe}"
    # Readiness asks for the service's own name: NOT_SERVING while loading and draining.
    assert c["readinessProbe"]["grpc"]["service"] == FULL_NAMES[name]
    assert c["livenessProbe"]["grpc"]["service"] == ""


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_drain_fits_in_the_termination_grace_period(docs, name):
    pod = named(docs, "Deployment", name)["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    pre_stop_s = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop_s >= 3, "endpoints need a few seconds to drop the pod"
    grace_s = float(_config_of(docs, name).get("IMAGETRUST_GRACE_S", config_mod.ServerConfig.grace_s))
    assert pod["terminationGracePeriodSeconds"] > pre_stop_s + grace_s + SETTLE_S


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_configmap_keys_are_real_settings(docs, name):
    """Every IMAGETRUST_* key maps to a field of the service's config dataclass, and the
    values parse (the same loader the service runs)."""
    data = _config_of(docs, name)
    cls = SERVICES[name].config_class
    known = {config_mod.env_name(f.name) for f in dataclasses.fields(cls)}
    assert set(data) <= known, f"unknown settings for {name}: {sorted(set(data) - known)}"
    loaded = config_mod.load(cls, environ=data)
    assert loaded.port == next(f.default for f in dataclasses.fields(cls) if f.name == "port")


def test_gateway_reaches_backends_through_headless_services_in_its_namespace(docs):
    data = _config_of(docs, "gateway")
    for backend, port in BACKEND_PORTS.items():
        headless = named(docs, "Service", f"{backend}-headless")
        assert headless["spec"]["clusterIP"] == "None"
        assert headless["spec"]["selector"] == {"app.kubernetes.io/name": backend}
        namespace = headless["metadata"]["namespace"]
        target = data[f"IMAGETRUST_{backend.upper()}_ADDR"]
        assert target == f"dns:///{backend}-headless.{namespace}.svc.cluster.local:{port}"
    redis = named(docs, "Service", "redis")
    assert _config_of(docs, "metadata")["IMAGETRUST_REDIS_URL"] == (
        f"redis://redis.{redis['metadata']['namespace']}.svc.cluster.local:6379/0"
    )


def test_every_service_has_account_pdb_and_configmap(docs):
    pdb_targets = {
        p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for p in of_kind(docs, "PodDisruptionBudget")
    }
    for name in SERVICE_NAMES:
        deployment = named(docs, "Deployment", name)
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == name
        named(docs, "ServiceAccount", name)
        named(docs, "Service", name)
        assert name in pdb_targets
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        assert pdb["spec"].get("maxUnavailable") == 1, "never block a drain of a 1-replica install"


def test_redis_is_persistent(docs):
    redis = named(docs, "StatefulSet", "redis")
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    conf = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("redis-config"))
    settings = dict(
        line.split(None, 1) for line in conf["data"]["redis.conf"].splitlines() if line and not line.startswith("#")
    )
    assert settings["appendonly"] == "yes" and settings["dir"] == "/data"
    assert settings["maxmemory-policy"] == "noeviction"
    mounts = {m["name"]: m["mountPath"] for m in redis["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["data"] == "/data"


# ----- autoscaling -------------------------------------------------------------------


def test_cpu_autoscaling_for_gateway_and_metadata(docs):
    for name in ("gateway", "metadata"):
        hpa = named(docs, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        # The HPA owns the count: a replicas field would reset it on every apply.
        assert "replicas" not in named(docs, "Deployment", name)["spec"]
        c = named(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert "cpu" in c["resources"]["requests"], "CPU utilisation is relative to requests"


def test_gpu_overlay_requests_gpus_and_scales_on_queue_depth():
    docs = render("prod-gpu")
    deployment = named(docs, "Deployment", "synthesis")
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"]
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert "-cuda" in c["image"]
    assert _config_of(docs, "synthesis")["IMAGETRUST_DEVICE"] == "cuda"
    assert "replicas" not in deployment["spec"]
    hpa = named(docs, "HorizontalPodAutoscaler", "synthesis")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "imagetrust_synthesis_queue_depth"


def test_dev_overlay_is_cpu_only():
    docs = render("dev")
    for w in workloads(docs):
        pod = w["spec"]["template"]["spec"]
        assert "runtimeClassName" not in pod
        for c in containers(w):
            assert not any("nvidia.com" in k for k in c["resources"]["limits"])
    synthesis = named(docs, "Deployment", "synthesis")
    assert synthesis["spec"]["template"]["spec"]["containers"][0]["image"].endswith("-cpu")
    assert _config_of(docs, "synthesis")["IMAGETRUST_DEVICE"] == "cpu"


# ----- network policy --------------------------------------------------------------


def _policy_for(docs: list[dict], app: str) -> dict:
    return next(
        p
        for p in of_kind(docs, "NetworkPolicy")
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == app
    )


def _ingress_sources(policy: dict, port: int) -> list[dict | None]:
    """The peers allowed to reach `port`; None means any source."""
    sources = []
    for rule in policy["spec"].get("ingress", []):
        if not any(p["port"] == port for p in rule.get("ports", [])):
            continue
        sources.extend(rule.get("from") or [None])
    return sources


def _is_prometheus(peer: dict | None) -> bool:
    return peer is not None and peer.get("namespaceSelector", {}).get("matchLabels") == {
        "kubernetes.io/metadata.name": MONITORING_NAMESPACE
    }


def test_default_deny_in_both_directions(docs):
    deny = named(docs, "NetworkPolicy", "default-deny")
    assert deny["spec"]["podSelector"] == {}
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]


def test_only_the_gateway_is_reachable_by_clients(docs):
    assert _ingress_sources(_policy_for(docs, "gateway"), 50051) == [None]
    for app, port in (*BACKEND_PORTS.items(), ("redis", 6379)):
        assert None not in _ingress_sources(_policy_for(docs, app), port), f"{app} open to everyone"


def test_backends_only_from_gateway_and_redis_only_from_metadata(docs):
    for app, port in BACKEND_PORTS.items():
        assert _ingress_sources(_policy_for(docs, app), port) == [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}
        ]
    assert _ingress_sources(_policy_for(docs, "redis"), 6379) == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "metadata"}}}
    ]
    # And from the other side: only metadata has an egress rule to Redis.
    for policy in of_kind(docs, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            if any(p["port"] == 6379 for p in rule.get("ports", [])):
                assert policy["metadata"]["name"] == "metadata"


def test_prometheus_may_scrape_every_metrics_port(docs):
    for w in workloads(docs):
        app = _labels_of(w)["app.kubernetes.io/name"]
        for c in containers(w):
            for port in c["ports"]:
                if port["name"] == "metrics":
                    sources = _ingress_sources(_policy_for(docs, app), port["containerPort"])
                    assert sources and all(_is_prometheus(s) for s in sources), f"{app}:{port['containerPort']}"


def test_policies_select_existing_pods(docs):
    apps = {_labels_of(w)["app.kubernetes.io/name"] for w in workloads(docs)}
    for policy in of_kind(docs, "NetworkPolicy"):
        selected = policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        assert selected is None or selected in apps, policy["metadata"]["name"]


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_probes_ask_names_the_real_service_serves(server_factory, tmp_path, name):
    """Start the real service and ask its health exactly what each rendered probe asks."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    overrides = {
        "gateway": {"synthesis_addr": "127.0.0.1:1", "metadata_addr": "127.0.0.1:1"},
        "metadata": {"registry_path": str(tmp_path / "registry.sqlite3")},
        "synthesis": {"device": "cpu"},
    }[name]
    server = server_factory(name, **overrides)
    (c,) = named(render("prod-gpu"), "Deployment", name)["spec"]["template"]["spec"]["containers"]
    with server.channel() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            request = health_pb2.HealthCheckRequest(service=c[probe]["grpc"]["service"])
            assert stub.Check(request, timeout=5).status == health_pb2.HealthCheckResponse.SERVING, probe
