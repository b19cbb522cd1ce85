"""The load-test kit: ghz request data and configs, the Python equivalent run against real
servers, and the round_robin scale-out the replica benchmark relies on."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import sys
import tomllib
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.bench_loadgen import LoadSpec, load_payloads, parse_duration_s, run_load, specs_from_ghz
from imagetrust.v1 import gateway_pb2

from .manifests import REPO

LOADTEST = REPO / "deploy" / "loadtest"
SAMPLES = REPO / "imagetrust" / "samples"
sys.path.insert(0, str(LOADTEST))
import make_data  # noqa: E402 - deploy/loadtest is a script folder, not a package

CONFIGS = sorted([*LOADTEST.glob("*.json"), *LOADTEST.glob("*.toml")])


def _read(path: pathlib.Path) -> dict:
    return tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())


def test_binary_data_holds_the_images_byte_for_byte(tmp_path):
    images = make_data.find_images([str(SAMPLES)])
    assert len(images) >= 3
    written = make_data.write_data(images, tmp_path)
    assert {p.name for p in written} == {*(f"{i.stem}.bin" for i in images), make_data.MIXED_NAME}
    for image in images:
        request = gateway_pb2.CheckRequest.FromString((tmp_path / f"{image.stem}.bin").read_bytes())
        assert request.image.data == image.read_bytes()  # never re-encoded
        assert request.image.filename == image.name
        assert request.register is False  # load tests never fill the registry
    mixed = make_data.read_delimited((tmp_path / make_data.MIXED_NAME).read_bytes())
    assert [m.image.data for m in mixed] == [i.read_bytes() for i in images]
    # The Python load generator reads the same files: count-prefixed and single.
    assert len(load_payloads([tmp_path / make_data.MIXED_NAME, tmp_path / f"{images[0].stem}.bin"])) == len(images) + 1


def test_ghz_configs_name_a_real_method_and_the_generated_data():
    assert len(CONFIGS) >= 3
    service = gateway_pb2.DESCRIPTOR.services_by_name["ImageTrust"]
    for path in CONFIGS:
        config = _read(path)
        package_service, method = config["call"].rsplit(".", 1)
        assert package_service == service.full_name and method in service.methods_by_name, path.name
        assert (REPO / config["proto"]).is_file()
        assert all((REPO / p).is_dir() for p in config["import-paths"])
        assert config["binary-file"] == f"deploy/loadtest/data/{make_data.MIXED_NAME}"
        assert config["insecure"] is True and ":" in config["host"]
        specs = specs_from_ghz(config)
        assert specs and all(s.concurrency >= 1 and s.duration_s > 0 for s in specs)
    step = specs_from_ghz(_read(LOADTEST / "check-rps-step.json"))
    assert [s.rps for s in step] == [float(r) for r in range(10, 101, 10)]
    assert parse_duration_s("1m30s") == 90.0 and parse_duration_s("500ms") == 0.5


# Every key ghz reads from a --config file: the json/toml tags of runner.Config in
# github.com/bojand/ghz (runner/config.go). ghz ignores any other key without a word, so a
# misspelt one (ghz's flag is --skipFirst, not --skip-first) silently changes the test run.
GHZ_CONFIG_KEYS = {
    "proto",
    "protoset",
    "call",
    "cacert",
    "cert",
    "key",
    "skipTLS",
    "skipFirst",
    "cname",
    "authority",
    "insecure",
    "total",
    "async",
    "concurrency",
    "concurrency-schedule",
    "concurrency-start",
    "concurrency-end",
    "concurrency-step",
    "concurrency-step-duration",
    "concurrency-max-duration",
    "connections",
    "rps",
    "duration",
    "duration-stop",
    "max-duration",
    "timeout",
    "data",
    "data-file",
    "binary-file",
    "metadata",
    "metadata-file",
    "stream-interval",
    "output",
    "format",
    "connect-timeout",
    "keepalive",
    "cpus",
    "import-paths",
    "name",
    "tags",
    "reflect-metadata",
    "debug",
    "host",
    "enable-compression",
    "load-schedule",
    "load-start",
    "load-end",
    "load-step",
    "load-step-duration",
    "load-max-duration",
}


def test_ghz_configs_use_only_keys_ghz_reads():
    for path in CONFIGS:
        unknown = set(_read(path)) - GHZ_CONFIG_KEYS
        assert not unknown, f"{path.name}: ghz would ignore {sorted(unknown)}"
    # docs/sre.md: the c16 run skips its first 32 calls as warm-up, in ghz and in the Python equivalent.
    config = _read(LOADTEST / "check-const-c16.json")
    assert config["skipFirst"] == 32
    assert [s.skip_first for s in specs_from_ghz(config)] == [32]


def test_load_generator_against_real_services(server_factory, tmp_path):
    metadata = server_factory("metadata", registry_path=str(tmp_path / "registry.sqlite3"))
    synthesis = server_factory("synthesis", device="cpu")
    gateway = server_factory("gateway", synthesis_addr=synthesis.address, metadata_addr=metadata.address)
    payloads = load_payloads(make_data.find_images([str(SAMPLES)]))
    spec = LoadSpec(concurrency=4, duration_s=1.5, connections=2, timeout_s=10, skip_first=2)
    result = asyncio.run(run_load(gateway.address, payloads, spec))
    assert result.count > 0 and result.codes == {"OK": result.count}
    assert 0 < result.percentile_ms(50) <= result.percentile_ms(99)
    summary = result.summary("smoke")
    for heading in ("Requests/sec:", "Latency distribution:", "99 % in", "[OK]"):
        assert heading in summary
    # Bad images come back as counted status codes, not crashes.
    bad = gateway_pb2.CheckRequest(image={"data": b"not an image"}).SerializeToString()
    result = asyncio.run(run_load(gateway.address, [bad], LoadSpec(concurrency=2, duration_s=0.5)))
    assert set(result.codes) == {"INVALID_ARGUMENT"}


def _detect_ok(server) -> float:
    with urllib.request.urlopen(server.metrics_url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        if f.name == "grpc_server_handled"
        for s in f.samples
        if s.name.endswith("_total") and s.labels.get("grpc_method") == "Detect" and s.labels.get("grpc_code") == "OK"
    )


def test_gateway_round_robins_over_a_multi_address_target(server_factory):
    """What bench_replicas measures, and what a headless Service gives the gateway."""
    replicas = [server_factory("synthesis", device="cpu") for _ in range(2)]
    target = "ipv4:" + ",".join(r.address for r in replicas)
    gateway = server_factory("gateway", synthesis_addr=target, metadata_addr="127.0.0.1:1")
    request = make_data.check_request(SAMPLES / "sns_resave.jpg", 0)
    request.options.skip_metadata = True
    calls = 12
    with gateway.channel(**{"grpc.max_send_message_length": 32 * 1024 * 1024}) as channel:
        check = channel.unary_unary(
            "/imagetrust.v1.ImageTrust/Check", response_deserializer=gateway_pb2.CheckResponse.FromString
        )
        for _ in range(calls):
            response = check(request.SerializeToString(), timeout=10)
            assert not response.degraded
    served = [_detect_ok(r) for r in replicas]
    assert sum(served) == calls
    assert all(n >= calls // 4 for n in served), f"calls not spread: {served}"


def test_a_ghz_config_runs_before_its_data_is_generated(server_factory, tmp_path):
    """docs/sre.md runs `python -m bench.bench_loadgen --ghz-config ...` on its own, before
    run.sh has written deploy/loadtest/data/: it must use the samples, not fail."""
    from bench import bench_loadgen

    gateway = server_factory("gateway", synthesis_addr="127.0.0.1:1", metadata_addr="127.0.0.1:1")
    config = {
        **_read(LOADTEST / "check-const-c16.json"),
        "binary-file": "deploy/loadtest/data/not-generated.bin",
        "duration": "1s",
        "concurrency": 2,
        "skipFirst": 0,
    }
    path = tmp_path / "check-not-generated.json"
    path.write_text(json.dumps(config))
    assert not (REPO / config["binary-file"]).exists()
    assert bench_loadgen.main(["--ghz-config", str(path), "--target", gateway.address]) == 0


def test_images_that_would_overwrite_each_others_data_are_refused(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("photo.jpg", "photo.png", "mixed.jpg", "other.jpg"):
        (photos / name).write_bytes((SAMPLES / "sns_resave.jpg").read_bytes())
    out = tmp_path / "data"
    with pytest.raises(SystemExit, match=r"share an output file \(rename one\): mixed\.bin, photo\.bin$"):
        make_data.write_data(make_data.find_images([str(photos)]), out)
    assert not out.exists()


def test_an_unreachable_target_is_named_in_the_error():
    from tests.helpers.ports import free_port

    target = f"127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=rf"^{target} not reachable within 0.5 s$"):
        asyncio.run(run_load(target, [b""], LoadSpec(concurrency=1, duration_s=0.1, timeout_s=0.5)))


def test_flags_override_a_ghz_config_as_with_ghz_and_the_load_shape_is_not_silently_dropped(
    server_factory, tmp_path, capsys
):
    """--duration and --data override the config (ghz's flags do too); --concurrency, --rps
    and --connections would fight the config's load shape, so they are refused, not ignored."""
    from bench import bench_loadgen

    gateway = server_factory("gateway", synthesis_addr="127.0.0.1:1", metadata_addr="127.0.0.1:1")
    config = {**_read(LOADTEST / "check-const-c16.json"), "duration": "10m", "concurrency": 2, "skipFirst": 0}
    path = tmp_path / "check-long.json"
    path.write_text(json.dumps(config))
    argv = [
        "--ghz-config",
        str(path),
        "--target",
        gateway.address,
        "--duration",
        "1",
        "--data",
        str(SAMPLES / "sns_resave.jpg"),
    ]
    assert bench_loadgen.main(argv) == 0
    out = capsys.readouterr().out
    assert "load generator: 1 request(s)" in out  # --data, not the config's binary-file
    total_s = float(re.search(r"Total:\s+([\d.]+) s", out).group(1))
    assert total_s < 60  # the config's 10 minutes were overridden by --duration 1
    for flag, value in (("--rps", "5"), ("--concurrency", "4"), ("--connections", "2")):
        with pytest.raises(SystemExit) as info:
            bench_loadgen.main(["--ghz-config", str(path), flag, value])
        assert info.value.code == 2
        assert f"{flag}: the load shape comes from --ghz-config" in capsys.readouterr().err
