"""The synthesis service over real gRPC, with small random checkpoints (real inference)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import threading
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from imagetrust.v1 import common_pb2, synthesis_pb2, synthesis_pb2_grpc
from services.common.config import load
from services.common.server import ServerRuntime
from services.synthesis.config import SynthesisConfig
from services.synthesis.engine import PLACEHOLDER_VERSION
from services.synthesis.service import SERVICE_NAME, SynthesisService

from .conftest import encode, photo, png_bomb

RPC_TIMEOUT_S = 60.0  # seconds; generous for a 2-core shared machine


def _stub(server):
    return synthesis_pb2_grpc.SynthesisDetectorStub(server.channel())


def _detect(stub, data: bytes, heatmap: bool = False, timeout: float = RPC_TIMEOUT_S):
    return stub.Detect(
        synthesis_pb2.DetectRequest(image=common_pb2.Image(data=data), want_heatmap=heatmap), timeout=timeout
    )


@pytest.fixture
def tiny_server(server_factory, tiny_checkpoint):
    return server_factory("synthesis", model_path=str(tiny_checkpoint), torch_threads=1, max_queue_delay_ms=20)


def test_scores_every_format_with_heatmap(tiny_server):
    stub = _stub(tiny_server)
    arr = photo(200, 300)
    import pillow_heif  # noqa: F401 - registers the HEIF encoder with Pillow

    inputs = {
        "png": encode(arr, "PNG"),
        "tiff": encode(arr, "TIFF"),
        "heic": encode(arr, "HEIF", quality=90),
        "jpeg": encode(arr, "JPEG", quality=92),
        "webp": encode(arr, "WEBP", quality=90),
    }
    for fmt, data in inputs.items():
        r = _detect(stub, data, heatmap=True)
        assert 0.0 <= r.score <= 1.0 and 0.0 <= r.global_score <= 1.0 and 0.0 <= r.local_score <= 1.0, fmt
        assert (r.width, r.height) == (300, 200), fmt
        # 64 px tiles, stride 64: ceil((200-64)/64)+1 = 4 rows, ceil((300-64)/64)+1 = 5 cols
        # = 20 tiles > 16, thinned evenly to 3 x 4.
        assert (r.heatmap.rows, r.heatmap.cols, r.heatmap.tile_size) == (3, 4, 64), fmt
        assert len(r.heatmap.scores) == 12 and all(0.0 <= s <= 1.0 for s in r.heatmap.scores), fmt
        assert r.model_version == "tiny-random-test" and r.model_arch == "tiny" and r.device == "cpu"
        assert r.placeholder  # the test checkpoint declares itself untrained
        assert "64px global" in r.preprocessing and "tiles 64px" in r.preprocessing
    # Lossless formats decode to the same pixels, so the same scores.
    png, tiff = _detect(stub, inputs["png"]), _detect(stub, inputs["tiff"])
    assert png.score == pytest.approx(tiff.score, abs=1e-6)
    # No heatmap unless asked.
    assert not _detect(stub, inputs["png"]).HasField("heatmap")


def test_exif_orientation_is_applied(tiny_server):
    img = Image.fromarray(photo(100, 180))
    exif = img.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    r = _detect(_stub(tiny_server), buf.getvalue())
    assert (r.width, r.height) == (100, 180)


def test_bad_input_gets_clear_status_and_server_keeps_serving(tiny_server):
    stub = _stub(tiny_server)
    good = encode(photo(), "PNG")
    cases = [
        (b"", grpc.StatusCode.INVALID_ARGUMENT, "empty"),
        (b"this is not an image at all" * 10, grpc.StatusCode.INVALID_ARGUMENT, "not a supported image"),
        (encode(photo(), "JPEG")[:600], grpc.StatusCode.INVALID_ARGUMENT, ""),
        (png_bomb(), grpc.StatusCode.RESOURCE_EXHAUSTED, "decompression-bomb"),
    ]
    for data, code, words in cases:
        with pytest.raises(grpc.RpcError) as err:
            _detect(stub, data)
        assert err.value.code() == code, err.value.details()
        assert words in err.value.details()
    assert 0.0 <= _detect(stub, good).score <= 1.0


def test_concurrent_requests_are_batched_and_metrics_exported(tiny_server):
    stub = _stub(tiny_server)
    images = [encode(photo(64, 64, seed=i), "PNG") for i in range(24)]  # 1 global + 1 tile each
    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        results = list(pool.map(lambda d: _detect(stub, d), images))
    # Results went to the right caller: each equals the image scored alone.
    for i in (0, 7, 23):
        assert results[i].score == pytest.approx(_detect(stub, images[i]).score, abs=1e-5)
    registry = tiny_server.runtime.metrics.collector_registry
    count = registry.get_sample_value("imagetrust_synthesis_batch_size_count")
    total = registry.get_sample_value("imagetrust_synthesis_batch_size_sum")
    assert total >= 48 and total / count > 1.5, f"mean batch {total / count:.2f}: no batching"
    text = urllib.request.urlopen(tiny_server.metrics_url, timeout=10).read().decode()
    for name in (
        "imagetrust_synthesis_queue_depth",
        "imagetrust_synthesis_batch_size_bucket",
        "imagetrust_synthesis_queue_wait_seconds_bucket",
        "imagetrust_synthesis_compute_seconds_bucket",
    ):
        assert name in text
    # The latency split an SRE reads per Detect: decode + preprocess, then the batcher (queue
    # wait + passes); one observation of each per answered request (27 above, at least).
    prepared = registry.get_sample_value("imagetrust_synthesis_prepare_seconds_count")
    batched = registry.get_sample_value("imagetrust_synthesis_batcher_request_seconds_count")
    assert prepared >= 27 and batched >= 27
    # A request's batcher time includes at least one pass: its sum cannot undercut the passes'.
    per_request = registry.get_sample_value("imagetrust_synthesis_batcher_request_seconds_sum") / batched
    per_pass = registry.get_sample_value("imagetrust_synthesis_compute_seconds_sum") / count
    assert per_request >= 0.5 * per_pass > 0
    assert 'imagetrust_synthesis_model_info{arch="tiny"' in text and 'device="cpu"' in text
    assert 'model_version="tiny-random-test"' in text


def test_full_queue_answers_resource_exhausted(server_factory, forensic_checkpoint):
    # One 1024x1024 image = 1 global view + 16 tiles = 17 inputs, exactly the queue; one
    # input per forward pass: the queue stays full for ~17 forward passes.
    server = server_factory(
        "synthesis",
        model_path=str(forensic_checkpoint),
        torch_threads=1,
        max_batch_size=1,
        max_queue_size=17,
        max_queue_delay_ms=0,
        warmup_iterations=1,
    )
    stub = _stub(server)
    data = encode(photo(1024, 1024), "PNG")
    codes = []
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        for fut in [pool.submit(_detect, stub, data) for _ in range(6)]:
            try:
                fut.result()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.append(err.code())
                if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    assert "queue full" in err.details()
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes and grpc.StatusCode.OK in codes, codes
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert 0.0 <= _detect(stub, encode(photo(64, 64), "PNG")).score <= 1.0  # keeps serving


def test_expired_deadline_is_dropped_before_compute(server_factory, forensic_checkpoint):
    server = server_factory(
        "synthesis",
        model_path=str(forensic_checkpoint),
        torch_threads=1,
        max_batch_size=1,
        max_queue_delay_ms=0,
        warmup_iterations=1,
    )
    stub = _stub(server)
    big = encode(photo(1024, 1024), "PNG")  # 17 inputs: ~17 one-input forward passes
    registry = server.runtime.metrics.collector_registry
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(_detect, stub, big)
        while not registry.get_sample_value("imagetrust_synthesis_queue_depth"):
            time.sleep(0.002)  # wait until the big image is queued
        with pytest.raises(grpc.RpcError) as err:
            _detect(stub, encode(photo(64, 64), "PNG"), timeout=0.05)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0.0 <= slow.result(RPC_TIMEOUT_S).score <= 1.0
    # Whether the batcher found it expired at the head of the queue or gRPC cancelled it
    # first, the late image's 2 inputs never reached the model: only the big image's 17 did
    # (warm-up does not go through the batcher).
    assert registry.get_sample_value("imagetrust_synthesis_batch_size_sum") == 17


def test_placeholder_when_no_model(server_factory, monkeypatch, tmp_path):
    import services.synthesis.engine as engine

    monkeypatch.setattr(engine, "DEFAULT_MODEL_PATH", tmp_path / "missing.pt")
    server = server_factory("synthesis", torch_threads=1, warmup_iterations=1)
    r = _detect(_stub(server), encode(photo(64, 64), "PNG"))
    assert r.placeholder and r.model_version == PLACEHOLDER_VERSION and r.model_arch == "forensic"


def test_health_not_serving_until_warm_up_done(tiny_checkpoint):
    # Many warm-up passes make load() take seconds: health and Detect are observed meanwhile.
    config = load(
        SynthesisConfig,
        environ={},
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
        log_format="text",
        model_path=str(tiny_checkpoint),
        torch_threads=1,
        warmup_iterations=1500,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runtime = ServerRuntime(SynthesisService(config), config)
    started = asyncio.run_coroutine_threadsafe(runtime.start(), loop)
    try:
        while runtime.server is None or not runtime.port:
            assert not started.done() or started.exception() is None
            time.sleep(0.005)
        channel = grpc.insecure_channel(f"127.0.0.1:{runtime.port}")
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10, wait_for_ready=True)
        assert not started.done(), "warm-up finished before it could be observed; raise warmup_iterations"
        assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as err:
            synthesis_pb2_grpc.SynthesisDetectorStub(channel).Detect(
                synthesis_pb2.DetectRequest(image=common_pb2.Image(data=encode(photo(64, 64), "PNG"))), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        started.result(120)
        status = health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        channel.close()
    finally:
        asyncio.run_coroutine_threadsafe(runtime.stop(1.0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
