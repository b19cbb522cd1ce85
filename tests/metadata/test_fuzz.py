"""A bounded, deterministic mutation fuzz of the real metadata and synthesis servers.

Real files (a camera JPEG with EXIF, thumbnail and MakerNote; a TIFF; a HEIF) and PNG and
WebP encodings of the JPEG carrying its EXIF are mutated with a fixed seed
(tests/metadata/mutations.py: truncations, byte flips, zeroed ranges, and the length, count
and offset fields of JPEG segments, EXIF IFDs, PNG chunks, RIFF chunks and HEIF boxes).
Every mutant must get a result or a clear refusal (INVALID_ARGUMENT / RESOURCE_EXHAUSTED
with a message) within the deadline, no server may log a traceback, and both servers must
still analyse a good image afterwards. ~280 mutants, ~10 s on the 2-core CI machine.
"""

from __future__ import annotations

import io
import logging
import random

import grpc
from PIL import Image

from imagetrust.v1 import common_pb2, metadata_pb2, metadata_pb2_grpc, synthesis_pb2, synthesis_pb2_grpc
from tests.helpers.checkpoints import make_checkpoint
from tests.metadata.mutations import FIXED, mutants

SEED = 20240601  # fixed: a failure names a mutant anyone can rebuild
MUTANTS_PER_FILE = 60  # mutants kept per source file (sampled with SEED when there are more)
# Seconds per call, as a gRPC deadline: a hang fails as DEADLINE_EXCEEDED. Each call takes
# milliseconds; the margin is for a loaded 2-core CI machine.
PER_CALL_DEADLINE_S = 10
ACCEPTED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
SOURCES = ("jpg/Canon_40D.jpg", "tiff/Arbitro.tiff", "heic/samplefilehub.heif")


def _cases(exif_samples) -> list[tuple[str, bytes]]:
    files = {name: (exif_samples / name).read_bytes() for name in SOURCES}
    camera = Image.open(io.BytesIO(files["jpg/Canon_40D.jpg"]))
    exif = camera.getexif().tobytes()
    for fmt, params in (("png", {}), ("webp", {"quality": 80})):
        buf = io.BytesIO()
        camera.save(buf, fmt.upper(), exif=exif, **params)
        files[f"Canon_40D.{fmt}"] = buf.getvalue()
    cases = list(FIXED)
    rng = random.Random(SEED)
    for name, data in files.items():
        made = list(mutants(name, data, SEED))
        cases += made if len(made) <= MUTANTS_PER_FILE else rng.sample(made, MUTANTS_PER_FILE)
    return cases


def _analyze(stub, data: bytes):
    request = metadata_pb2.AnalyzeRequest(image=common_pb2.Image(data=data))
    return stub.Analyze(request, timeout=PER_CALL_DEADLINE_S)


def _detect(stub, data: bytes):
    request = synthesis_pb2.DetectRequest(image=common_pb2.Image(data=data), want_heatmap=True)
    return stub.Detect(request, timeout=PER_CALL_DEADLINE_S)


def test_mutants_get_an_answer_or_a_clear_status(server_factory, exif_samples, tmp_path, caplog):
    make_checkpoint(tmp_path / "tiny.pt", "tiny")
    metadata = server_factory("metadata", registry_path=str(tmp_path / "registry.sqlite3"))
    synthesis = server_factory(
        "synthesis", model_path=str(tmp_path / "tiny.pt"), torch_threads=1, max_queue_delay_ms=1, warmup_iterations=1
    )
    cases = _cases(exif_samples)
    assert 150 <= len(cases) <= 300, len(cases)
    good = (exif_samples / SOURCES[0]).read_bytes()
    calls = {
        "metadata": (metadata_pb2_grpc.MetadataAnalyzerStub(metadata.channel()), _analyze),
        "synthesis": (synthesis_pb2_grpc.SynthesisDetectorStub(synthesis.channel()), _detect),
    }
    outcomes: dict[str, dict[grpc.StatusCode, int]] = {service: {} for service in calls}
    with caplog.at_level(logging.ERROR):
        for name, data in cases:
            for service, (stub, call) in calls.items():
                try:
                    call(stub, data)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as err:
                    code = err.code()
                    assert code in ACCEPTED, f"{service} {name}: {code} {err.details()}"
                    assert err.details(), f"{service} {name}: {code} without a message"
                outcomes[service][code] = outcomes[service].get(code, 0) + 1
        for stub, call in calls.values():
            call(stub, good)  # still serving
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, [(r.name, r.getMessage()) for r in tracebacks[:5]]
    print(
        f"\n{len(cases)} mutants: "
        + "; ".join(
            f"{service} " + ", ".join(f"{code.name} {n}" for code, n in sorted(counts.items(), key=lambda c: c[0].name))
            for service, counts in outcomes.items()
        )
    )
    # The mutants exercise both outcomes: some still parse, some are refused.
    for counts in outcomes.values():
        assert counts.get(grpc.StatusCode.OK) and counts.get(grpc.StatusCode.INVALID_ARGUMENT), counts
