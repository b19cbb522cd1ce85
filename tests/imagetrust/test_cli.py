"""The `imagetrust` command as a user runs it: a real process against real servers."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import signal
import socket
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.helpers.paths import REPO, SAMPLES

CLI = [sys.executable, "-m", "imagetrust.cli"]


def run_cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )


@pytest.fixture
def gateway(server_factory):
    metadata = server_factory("metadata")
    synthesis = server_factory("synthesis")
    return server_factory("gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address)


def test_version() -> None:
    result = run_cli("version")
    assert result.returncode == 0
    assert result.stdout.startswith("imagetrust 0.1.0")


def test_check_prints_a_table_with_a_row_per_file(gateway) -> None:
    files = sorted(str(p) for p in SAMPLES.glob("*.jpg"))
    result = run_cli("check", "--addr", gateway.address, *files)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["FILE", "DECISION", "RISK"]
    assert len(lines) == 1 + len(files)
    for line, path in zip(lines[1:], files):
        assert line.startswith(path)
        assert line.split()[1] in ("ALLOW", "REVIEW", "BLOCK")
    # stderr is a pipe here, as in a log file or a CI job: no progress bar in it.
    assert "img/s" not in result.stderr and "3/3" not in result.stderr, result.stderr


def test_check_shows_a_progress_bar_when_stderr_is_a_terminal(gateway) -> None:
    files = sorted(str(p) for p in SAMPLES.glob("*.jpg"))
    controller, terminal = pty.openpty()
    # A new pty is 0 columns wide, which tqdm honours with an empty bar: size it as a terminal.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    try:
        proc = subprocess.Popen(
            [*CLI, "check", "--addr", gateway.address, *files], cwd=REPO, stdout=subprocess.PIPE, stderr=terminal
        )
        os.close(terminal)  # the child holds its end; reading ends with EIO once it exits
        seen = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(controller, 4096):
                seen += chunk
        proc.communicate(timeout=120)
    finally:
        os.close(controller)
    assert proc.returncode == 0
    assert b"img/s" in seen or b"3/3" in seen, seen[-500:]


def test_table_never_shows_a_placeholder_model_score_as_a_number() -> None:
    from imagetrust import report
    from imagetrust.v1 import gateway_pb2, synthesis_pb2

    placeholder = gateway_pb2.CheckResponse(synthesis=synthesis_pb2.DetectResponse(score=0.43, placeholder=True))
    real = gateway_pb2.CheckResponse(synthesis=synthesis_pb2.DetectResponse(score=0.43))
    assert report.table([("a.jpg", placeholder, None)]).splitlines()[1].split()[3] == "n/a"
    assert report.table([("a.jpg", real, None)]).splitlines()[1].split()[3] == "0.43"


def test_check_json_lines_for_scripts(gateway) -> None:
    path = str(SAMPLES / "camera_original.jpg")
    result = run_cli("check", "--addr", gateway.address, "--json", "--seller-id", "s-1", path)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["file"] == path
    assert record["decision"] in ("ALLOW", "REVIEW", "BLOCK")
    assert record["request_id"]


def test_check_exits_non_zero_when_a_call_fails(gateway, tmp_path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    result = run_cli("check", "--addr", gateway.address, "--json", str(bad), str(SAMPLES / "camera_original.jpg"))
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0]["error"].startswith("INVALID_ARGUMENT")
    assert records[1]["decision"] in ("ALLOW", "REVIEW", "BLOCK"), "one bad file does not stop the others"

    missing = run_cli("check", "--addr", gateway.address, str(tmp_path / "nope.jpg"))
    assert missing.returncode == 1 and "cannot read file" in missing.stdout


def test_check_against_no_server_fails_with_unavailable(tmp_path) -> None:
    from tests.helpers.ports import free_port

    result = run_cli(
        "check", "--addr", f"127.0.0.1:{free_port()}", "--timeout", "2", str(SAMPLES / "camera_original.jpg")
    )
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stdout or "DEADLINE_EXCEEDED" in result.stdout


@pytest.mark.slow
def test_demo_brings_the_suite_up_and_prints_verdicts() -> None:
    result = run_cli("demo", timeout=600)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()[1:]
    assert {row.split()[0].rsplit("/", 1)[1] for row in rows} == {p.name for p in SAMPLES.glob("*.jpg")}
    assert all(row.split()[1] in ("ALLOW", "REVIEW", "BLOCK") for row in rows)
    # Every backend answered: the gateway starts only once the backends are SERVING.
    assert all(row.split()[5] == "no" for row in rows), result.stdout
    assert all(row.split()[3] != "-" for row in rows), "a synthesis score for every image"
    # The bundled story: another seller lists a resized, re-encoded, metadata-stripped copy
    # of the camera original, and the reuse registry catches it.
    stolen = next(row for row in rows if "stolen_copy.jpg" in row.split()[0])
    assert stolen.split()[1] == "REVIEW" and "REUSED_BY_OTHER_SELLER" in stolen, result.stdout
    original = next(row for row in rows if "camera_original.jpg" in row.split()[0])
    assert "REUSED" not in original, result.stdout


@contextlib.contextmanager
def _ctrl_c_reaches_children():
    """Children exec'd inside inherit SIGINT as the shell gives it to a foreground command.

    A suite started as a background job (`cmd &`, nohup) has SIGINT ignored, and an ignored
    signal stays ignored across exec, so the CLI under test would never see the Ctrl-C the
    test sends. A Python-level handler is reset to the default on exec instead."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _copies(tmp_path, n: int) -> list[str]:
    data = (SAMPLES / "sns_resave.jpg").read_bytes()
    paths = [tmp_path / f"photo-{i:03d}.jpg" for i in range(n)]
    for path in paths:
        path.write_bytes(data)
    return [str(p) for p in paths]


def test_ctrl_c_during_a_check_of_many_files_stops_at_once_without_a_traceback(gateway, tmp_path) -> None:
    files = _copies(tmp_path, 200)
    with _ctrl_c_reaches_children():
        proc = subprocess.Popen(
            [*CLI, "check", "--addr", gateway.address, "--json", "--no-progress", "--workers", "2", *files],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    first = proc.stdout.readline()  # checks are under way
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert json.loads(first)["file"] == files[0]
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert 1 + len(out.splitlines()) < len(files), "the remaining files were dropped, not checked first"


def test_stdout_closed_early_ends_quietly(gateway, tmp_path) -> None:
    files = _copies(tmp_path, 200)
    proc = subprocess.Popen(
        [*CLI, "check", "--addr", gateway.address, "--json", "--no-progress", "--workers", "2", *files],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert json.loads(proc.stdout.readline())["file"] == files[0]
    proc.stdout.close()  # what `| head -1` does after its line
    err = proc.stderr.read()
    assert proc.wait(60) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err


@pytest.mark.parametrize("option", [("--workers", "0"), ("--workers", "-1"), ("--timeout", "0"), ("--timeout", "inf")])
def test_bad_workers_or_timeout_is_a_usage_error_not_a_traceback(option) -> None:
    result = run_cli("check", *option, str(SAMPLES / "camera_original.jpg"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"imagetrust check: error: argument {option[0]}")


def test_serve_with_a_bad_setting_says_which_in_one_line() -> None:
    result = run_cli("serve", "gateway", "--port", "0", "--metrics-port", "-1", "--log-format", "bogus")
    assert result.returncode == 2
    assert result.stderr.strip() == "imagetrust serve gateway: invalid setting: log_format must be json or text"


def _startup_failure(result: subprocess.CompletedProcess) -> dict:
    """The one ERROR line a service that cannot start logs (JSON, like all its lines)."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr
    # grpc's C core prints its own bind error line before ours; every line of ours is JSON.
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    errors = [e for e in entries if e["level"] == "ERROR"]
    assert len(errors) == 1, entries
    return errors[0]


def test_serve_on_a_port_in_use_logs_one_error_line_and_exits_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "serve", "metadata", "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "-1", timeout=60
        )
    error = _startup_failure(result)
    assert error["msg"].startswith(f"metadata failed to start: cannot bind the gRPC port 127.0.0.1:{port}")
    assert error["error"] == "OSError"


def test_serve_with_a_missing_model_logs_one_error_line_and_exits_1(tmp_path) -> None:
    missing = tmp_path / "nope.pt"
    result = run_cli(
        "serve",
        "synthesis",
        "--port",
        "0",
        "--metrics-port",
        "-1",
        timeout=120,
        env={"IMAGETRUST_MODEL_PATH": str(missing)},
    )
    error = _startup_failure(result)
    assert error["msg"] == (
        f"synthesis failed to start: synthesis model_path {missing} does not exist (unset it to use the default model)"
    )


def test_serve_gateway_with_a_bad_policy_logs_one_error_line_and_exits_1(tmp_path) -> None:
    """The policy is read when the gateway is built, before the runtime starts: a typo in it
    (docs/gateway.md) must end like any failed start, not in a traceback."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        (REPO / "services" / "gateway" / "policy.yaml").read_text().replace("\nthresholds:", "\nthreshholds:", 1)
    )
    result = run_cli(
        "serve", "gateway", "--port", "0", "--metrics-port", "-1", env={"IMAGETRUST_POLICY_PATH": str(policy)}
    )
    error = _startup_failure(result)
    assert error["msg"].startswith(f"gateway failed to start: policy {policy}: policy: unknown key(s) ['threshholds']")
    assert error["error"] == "PolicyError"


def test_serve_gateway_with_a_missing_api_keys_file_logs_one_error_line_and_exits_1(tmp_path) -> None:
    missing = tmp_path / "api-keys"
    result = run_cli(
        "serve", "gateway", "--port", "0", "--metrics-port", "-1", env={"IMAGETRUST_API_KEYS_FILE": str(missing)}
    )
    error = _startup_failure(result)
    assert error["msg"].startswith("gateway failed to start: ") and str(missing) in error["msg"]
    assert error["error"] == "FileNotFoundError"


def test_demo_whose_services_do_not_come_up_says_so_in_one_line() -> None:
    result = run_cli("demo", env={"IMAGETRUST_LOG_FORMAT": "bogus"})  # every service refuses to start
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("imagetrust demo: service on port ") and "before it was ready (see its log in " in last


def test_ctrl_c_while_the_demo_starts_stops_the_services_without_a_traceback(tmp_path) -> None:
    log_dir = tmp_path / "logs"
    # A session of its own: the signal goes to the whole process group, as a terminal's Ctrl-C does.
    with _ctrl_c_reaches_children():
        proc = subprocess.Popen(
            [*CLI, "demo", "--log-dir", str(log_dir)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while not (log_dir / "synthesis.log").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "imagetrust: interrupted"
    assert out == ""
