"""Every exif-samples file (broken ones included) through the real gRPC server: each gets
a result or INVALID_ARGUMENT within the call deadline, and the server keeps serving."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imagetrust.v1 import common_pb2, metadata_pb2, metadata_pb2_grpc
from tests.metadata.corpus import corpus_files

# Seconds a single file may take, as a gRPC deadline: a hang fails as DEADLINE_EXCEEDED.
PER_FILE_DEADLINE_S = 20
ACCEPTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
TRUNCATED_SAMPLES = 8  # corpus JPEGs also sent cut in half


@pytest.mark.slow
def test_whole_corpus_through_the_server(server_factory, exif_samples, tmp_path):
    # Own registry file: the default one is shared by every run on the machine, and a file
    # seen by an earlier run comes back with a registry finding (source "registry").
    server = server_factory("metadata", registry_path=str(tmp_path / "registry.sqlite3"))
    files = corpus_files(exif_samples)
    assert len(files) >= 100
    cases = [(p.relative_to(exif_samples).as_posix(), p.read_bytes()) for p in files]
    jpegs = [c for c in cases if c[1][:2] == b"\xff\xd8"][:: max(1, len(cases) // TRUNCATED_SAMPLES)]
    cases += [(name + "[:half]", data[: len(data) // 2]) for name, data in jpegs[:TRUNCATED_SAMPLES]]
    outcomes: dict[str, grpc.StatusCode] = {}
    with server.channel() as channel:
        stub = metadata_pb2_grpc.MetadataAnalyzerStub(channel)
        for name, data in cases:
            request = metadata_pb2.AnalyzeRequest(image=common_pb2.Image(data=data, filename=name))
            try:
                response = stub.Analyze(request, timeout=PER_FILE_DEADLINE_S)
            except grpc.RpcError as err:
                outcomes[name] = err.code()
                assert err.code() in ACCEPTED, f"{name}: {err.code()} {err.details()}"
                assert err.details(), name
                continue
            outcomes[name] = grpc.StatusCode.OK
            assert response.image.width > 0 and response.image.height > 0, name
            assert 0.0 <= response.risk <= 1.0, name
            assert all(f.code and f.message and f.source == "metadata" for f in response.findings), name
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    ok = sum(1 for c in outcomes.values() if c == grpc.StatusCode.OK)
    print(f"\ncorpus: {len(outcomes)} inputs, {ok} analysed, {len(outcomes) - ok} INVALID_ARGUMENT")
    # Every untouched corpus file has a readable header; only truncated copies may be refused.
    assert all(code == grpc.StatusCode.OK for name, code in outcomes.items() if not name.endswith("[:half]"))
