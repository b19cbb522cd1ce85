"""The names users copy out of the docs and manifests exist in the code.

A typo'd IMAGETRUST_* variable is silently ignored by the config loader, and a metric name
that does not exist makes an alert, an HPA or a dashboard read nothing without any error, so
both are checked here against the code itself: config fields from the dataclasses, metric
names and labels from the prometheus_client constructors (read with ast, so no server and no
torch import is needed). tests/deploy checks the rendered ConfigMaps and the alert rules
against a live /metrics; this covers every file under deploy/ and the prose in README.md and
docs/ as well.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib
import re

from services.common import config as config_mod
from services.gateway.config import GatewayConfig
from services.metadata.config import MetadataConfig
from services.synthesis.config import SynthesisConfig

REPO = pathlib.Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
DEPLOY = sorted(p for p in (REPO / "deploy").rglob("*") if p.is_file() and p.suffix != ".bin")
K8S = [p for p in DEPLOY if "k8s" in p.parts]
CONFIG_CLASSES = (GatewayConfig, MetadataConfig, SynthesisConfig)
METRIC_TYPES = {"Counter", "Gauge", "Histogram", "Summary", "Info"}
# Labels Prometheus adds to every scraped series (target labels) and histogram buckets.
TARGET_LABELS = {"job", "namespace", "pod", "instance", "service", "container", "endpoint", "le"}
ENV_RE = re.compile(r"\bIMAGETRUST_[A-Z0-9_]*[A-Z0-9]")
# Not inside a recording rule's name (imagetrust:grpc_server_errors:rate5m): those are checked
# against the rule file below.
METRIC_RE = re.compile(r"(?<![\w:])((?:imagetrust|grpc_server)_[a-z0-9_]*[a-z0-9])(?![\w:])(\{[^}\n]*\})?")


def _config_env_names() -> set[str]:
    return {config_mod.env_name(f.name) for cls in CONFIG_CLASSES for f in dataclasses.fields(cls)}


def _client_env_names() -> set[str]:
    """The SDK's own variables (IMAGETRUST_GATEWAY, IMAGETRUST_CLIENT_TLS_CA, ...)."""
    source = (REPO / "imagetrust" / "client.py").read_text()
    return set(re.findall(r"""["'](IMAGETRUST_[A-Z0-9_]+)["']""", source))


def _literal_strings(node: ast.AST, names: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The strings of a tuple/list literal, a name bound to one, or *name inside one."""
    if isinstance(node, ast.Name):
        return names.get(node.id, ())
    if isinstance(node, ast.Starred):
        return _literal_strings(node.value, names)
    if isinstance(node, (ast.Tuple, ast.List)):
        out: list[str] = []
        for element in node.elts:
            if isinstance(element, ast.Constant) and isinstance(element.value, str):
                out.append(element.value)
            else:
                out.extend(_literal_strings(element, names))
        return tuple(out)
    return ()


def exported_metrics() -> dict[str, set[str]]:
    """Every series name the servers can export, with its labels (as the text format names them)."""
    metrics: dict[str, set[str]] = {}
    for path in sorted((REPO / "services").rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = {
            target.id: _literal_strings(node.value, {})
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        info_keys: dict[int, set[str]] = {}
        for node in ast.walk(tree):  # Info(...).info({...}): the dict's keys are its labels
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "info"
                and node.args
                and isinstance(node.args[0], ast.Dict)
            ):
                info_keys[id(node.func.value)] = {k.value for k in node.args[0].keys if isinstance(k, ast.Constant)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in METRIC_TYPES):
                continue
            if not (node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                continue
            base, kind = node.args[0].value, node.func.id
            label_node = (
                node.args[2]
                if len(node.args) > 2
                else next((k.value for k in node.keywords if k.arg == "labelnames"), None)
            )
            labels = set(_literal_strings(label_node, names)) if label_node is not None else set()
            if kind == "Info":
                metrics[base + "_info"] = info_keys.get(id(node), set())
            elif kind == "Counter":
                metrics[base + "_total"] = labels
            elif kind in ("Histogram", "Summary"):
                metrics[base] = labels  # the docs name a histogram by its family name too
                for suffix in ("_count", "_sum"):
                    metrics[base + suffix] = labels
                if kind == "Histogram":
                    metrics[base + "_bucket"] = labels | {"le"}
            else:
                metrics[base] = labels
    return metrics


def _mentions(paths: list[pathlib.Path]) -> list[tuple[str, str, str]]:
    """(file, metric, "{labels}" or "") for every metric-like name in the files."""
    found = []
    for path in paths:
        for match in METRIC_RE.finditer(path.read_text()):
            found.append((str(path.relative_to(REPO)), match.group(1), match.group(2) or ""))
    return found


def _label_names(braces: str) -> set[str]:
    inner = braces.strip("{}").replace("\\|", "|")
    names = set()
    for part in inner.split(","):
        name = re.split(r"[=!~]", part.strip(), maxsplit=1)[0].strip()
        if name and name != "...":
            names.add(name)
    return names


def test_the_code_exports_the_metrics_this_test_reads():
    """Guards the ast reader itself: a refactor that hides the constructors must fail here."""
    metrics = exported_metrics()
    assert metrics["grpc_server_handled_total"] == {"grpc_type", "grpc_service", "grpc_method", "grpc_code"}
    assert metrics["imagetrust_synthesis_queue_depth"] == set()
    assert metrics["imagetrust_registry_lookups_total"] == {"backend", "outcome"}
    assert "placeholder" in metrics["imagetrust_synthesis_model_info"]
    assert "imagetrust_build_info" in metrics


def test_every_imagetrust_variable_in_deploy_is_a_setting():
    known = _config_env_names()
    unknown = sorted(
        f"{path.relative_to(REPO)}: {name}"
        for path in DEPLOY
        for name in set(ENV_RE.findall(path.read_text(errors="replace")))
        if name not in known
    )
    assert not unknown, f"IMAGETRUST_* names in deploy/ that no config field reads (ignored at run time): {unknown}"


def test_every_imagetrust_variable_in_the_docs_exists():
    # IMAGETRUST_NAME is docs/gateway.md's placeholder for "IMAGETRUST_ + the field name".
    known = _config_env_names() | _client_env_names() | {"IMAGETRUST_NAME"}
    unknown = sorted(
        f"{path.relative_to(REPO)}: {name}"
        for path in DOCS
        for name in set(ENV_RE.findall(path.read_text()))
        if name not in known
    )
    assert not unknown, f"IMAGETRUST_* names in the docs that neither a server nor the SDK reads: {unknown}"


def test_every_imagetrust_variable_in_the_sdk_docstring_is_one_it_reads():
    """The SDK's module docstring is its first doc; a name settings_from_env does not read
    (the servers' IMAGETRUST_TLS_* instead of IMAGETRUST_CLIENT_TLS_*) silently means plaintext."""
    from imagetrust import client

    named = set(ENV_RE.findall(client.__doc__))
    assert "IMAGETRUST_GATEWAY" in named
    ignored = sorted(name for name in named if client.settings_from_env({name: "1"}) == client.settings_from_env({}))
    assert not ignored, f"IMAGETRUST_* names in imagetrust/client.py's docstring that the SDK ignores: {ignored}"


def test_metrics_named_in_docs_and_manifests_exist_with_those_labels():
    metrics = exported_metrics()
    problems = []
    for where, name, braces in _mentions(DOCS + K8S):
        if name not in metrics:
            problems.append(f"{where}: {name} is not exported by the code")
            continue
        extra = _label_names(braces) - metrics[name] - TARGET_LABELS
        if extra:
            problems.append(f"{where}: {name} has no label(s) {sorted(extra)}")
    assert not problems, "\n".join(problems)


def test_every_exported_metric_is_documented():
    documented = {name for _, name, _ in _mentions(DOCS)}
    missing = sorted({m for m in exported_metrics() if not m.endswith(("_bucket", "_count", "_sum"))} - documented)
    assert not missing, f"metrics the servers export that no doc names (docs/sre.md 'Metrics to watch'): {missing}"


def test_recording_rules_named_in_the_sre_guide_exist():
    rules = (REPO / "deploy/k8s/components/monitoring/prometheusrule.yaml").read_text()
    recorded = set(re.findall(r"record: (\S+)", rules))
    named = set(re.findall(r"imagetrust:[a-z0-9_:]+[a-z0-9]", (REPO / "docs" / "sre.md").read_text()))
    assert named - recorded == set(), f"docs/sre.md names recording rules that do not exist: {named - recorded}"
    assert recorded - named == set(), f"recording rules docs/sre.md does not list: {recorded - named}"


def test_every_setting_has_its_help_and_the_readme_points_to_where_they_are_defined():
    """A setting is described once, where it is defined (its help text, shown by --help);
    the README's Configuration section points to those modules instead of restating them."""
    undocumented = sorted(
        f"{cls.__name__}.{f.name}"
        for cls in (config_mod.ServerConfig, *CONFIG_CLASSES)
        for f in dataclasses.fields(cls)
        if not f.metadata.get("help", "").strip()
    )
    assert not undocumented, f"settings without help text: {undocumented}"
    readme = (REPO / "README.md").read_text()
    for module in (
        "services/common/config.py",
        "services/gateway/config.py",
        "services/metadata/config.py",
        "services/synthesis/config.py",
    ):
        assert f"`{module}`" in readme, f"README's Configuration section does not point to {module}"


def test_every_benchmark_has_its_section_in_docs_benchmarks():
    """docs/benchmarks.md is the one place figures live: a section per benchmark `make bench` runs."""
    from bench.__main__ import BENCHMARKS

    sections = set(re.findall(r"^## (\S+)$", (REPO / "docs" / "benchmarks.md").read_text(), re.M))
    assert set(BENCHMARKS) <= sections, (
        f"benchmarks without a section in docs/benchmarks.md: {set(BENCHMARKS) - sections}"
    )


def test_every_error_reason_is_in_the_readme_errors_table():
    """The reasons are an API: each one the code can send is documented, and the table
    names no reason the code lacks."""
    import re

    from services.common import errors

    reasons = {value for name, value in vars(errors).items() if name.isupper() and name == value}
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("### Errors") : readme.index("The SDK (`imagetrust.client`) retries")]
    documented = set(re.findall(r"^\| `[A-Z_]+` \| `([A-Z_]+)`", table, flags=re.M))
    documented |= set(re.findall(r"/ `([A-Z_]+)` \|", table))
    assert reasons == documented
