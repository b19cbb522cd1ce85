"""The consistency path of the synthesis service over real gRPC: real camera photos, small
random embedders and Splicebuster (real inference), patch rows batched across requests."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from services.synthesis.checkpoint import load_checkpoint
from services.synthesis.onnx_runtime import OrtPredictor
from services.synthesis.predictor import Predictor
from tests.helpers.checkpoints import make_consistency_checkpoint, make_splicebuster_checkpoint
from tests.helpers.paths import CAMERA_PHOTOS, require_dataset
from tests.helpers.servers import RunningServer, start_server
from training import serving_path

from .conftest import encode
from .test_service import _detect, _stub

# Camera JPEGs of 0.6-1.3 MP (one per make): full grids of native patches, quick to decode.
PHOTOS = ("Kodak_ProBack.jpg", "FujiFilm_MX-1200.jpg", "Kodak_CLAS_Digital_Film_Scanner_HR200_(2).jpg")
RUNTIME_TOLERANCE = 1e-4  # score units: ONNX Runtime vs torch on the same patch rows


def _photo(name: str) -> bytes:
    return (require_dataset(CAMERA_PHOTOS) / name).read_bytes()


@pytest.fixture(scope="module")
def consistency_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "consistency.pt"
    make_consistency_checkpoint(path)
    return path


def _serve(checkpoint, **overrides) -> RunningServer:
    return start_server("synthesis", model_path=str(checkpoint), torch_threads=1, **overrides)


@pytest.fixture(scope="module")
def torch_server(consistency_checkpoint) -> Iterator[RunningServer]:
    server = _serve(consistency_checkpoint, runtime="torch")
    yield server
    server.stop()


def _batch_counts(server: RunningServer) -> tuple[float, float]:
    registry = server.runtime.metrics.collector_registry
    count = registry.get_sample_value("imagetrust_synthesis_batch_size_count") or 0.0
    total = registry.get_sample_value("imagetrust_synthesis_batch_size_sum") or 0.0
    return count, total


def test_a_camera_photo_is_scored_with_a_patch_heatmap(torch_server, consistency_checkpoint):
    data = _photo(PHOTOS[0])
    r = _detect(_stub(torch_server), data, heatmap=True)
    assert 0.0 <= r.score <= 1.0 and r.global_score == r.local_score == r.score
    assert not r.uncertain and r.method == "consistency" and r.model_arch == "consistency"
    assert (r.width, r.height) == (1228, 877) and r.placeholder
    assert "patches 64px" in r.preprocessing and "scorer embedding" in r.preprocessing
    h = r.heatmap
    assert h.rows * h.cols == len(h.scores) <= 512 and 0 < r.valid_patches <= len(h.scores)
    assert all(0.0 <= s <= 1.0 for s in h.scores)
    assert h.tile_size == 64 and h.stride >= 32 and h.stride % 8 == 0
    assert h.origin_x % 8 == 0 and h.origin_y % 8 == 0
    assert h.origin_x + (h.cols - 1) * h.stride + 64 <= r.width
    assert h.origin_y + (h.rows - 1) * h.stride + 64 <= r.height
    # Invalid (flat or clipped) patches are 0 in the heatmap; the rest are scored.
    assert sum(1 for s in h.scores if s > 0) <= r.valid_patches
    # The evaluator's path (training.serving_path) gives the service's answer.
    ckpt = load_checkpoint(consistency_checkpoint)
    offline = serving_path.consistency_scores(ckpt, [data], want_heatmap=True)[0]
    assert offline.valid_patches == r.valid_patches and not offline.uncertain
    assert r.score == pytest.approx(offline.score, abs=1e-5)
    assert list(h.scores) == pytest.approx([v for row in offline.heatmap for v in row], abs=1e-5)
    assert serving_path.score(ckpt, [data])[0] == pytest.approx(r.score, abs=1e-5)
    assert not _detect(_stub(torch_server), data).HasField("heatmap")


@pytest.mark.parametrize(
    "image",
    [
        np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8),  # smaller than one patch
        np.full((480, 640, 3), 128, dtype=np.uint8),  # flat grey: no patch carries traces
    ],
    ids=["tiny", "flat"],
)
def test_images_without_traces_are_uncertain_without_a_model_call(torch_server, image):
    before = _batch_counts(torch_server)
    r = _detect(_stub(torch_server), encode(image, "PNG"), heatmap=True)
    assert r.uncertain and r.score == 0.0 and r.valid_patches == 0 and r.method == "consistency"
    assert (r.width, r.height) == (image.shape[1], image.shape[0])
    assert not r.HasField("heatmap")
    assert _batch_counts(torch_server) == before  # no forward pass was spent on it


def test_concurrent_photos_share_forward_passes(torch_server, consistency_checkpoint):
    # Room for several photos' rows in one pass (a pass takes whole requests, and two photos
    # can exceed 512 rows), a decode thread per request and a long enough wait that photos
    # decoded on 2 shared cores reach the queue within one batching window.
    photos = [_photo(name) for name in PHOTOS] * 3  # 9 requests
    server = _serve(
        consistency_checkpoint,
        runtime="torch",
        max_batch_size=4096,
        max_queue_delay_ms=2000,
        decode_workers=len(photos),
    )
    try:
        alone = {data: _detect(_stub(torch_server), data) for data in photos[: len(PHOTOS)]}
        stub = _stub(server)
        with concurrent.futures.ThreadPoolExecutor(len(photos)) as pool:
            results = list(pool.map(lambda d: _detect(stub, d), photos))
        for data, r in zip(photos, results):  # each answer went to its own caller
            assert r.score == pytest.approx(alone[data].score, abs=1e-5)
            assert r.valid_patches == alone[data].valid_patches
        count, total = _batch_counts(server)
        assert total == sum(r.valid_patches for r in results)  # every row computed once
        # Each request's rows go in one pass, so fewer passes than requests means some pass
        # held the rows of two or more photos: a batch larger than one image's inputs.
        assert count < len(photos), f"{count:.0f} passes for {len(photos)} requests: no batching across requests"
    finally:
        server.stop()


def test_bad_bytes_are_invalid_argument_and_the_server_keeps_serving(torch_server):
    stub = _stub(torch_server)
    for data in (b"this is not an image at all" * 10, _photo(PHOTOS[1])[:700]):
        with pytest.raises(grpc.RpcError) as err:
            _detect(stub, data)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert not _detect(stub, _photo(PHOTOS[1])).uncertain


def test_onnxruntime_scores_as_torch_does(torch_server, consistency_checkpoint):
    server = _serve(consistency_checkpoint, runtime="onnxruntime")
    try:
        assert isinstance(server.service.engine.predictor, OrtPredictor)
        assert isinstance(torch_server.service.engine.predictor, Predictor)
        for name in PHOTOS[:2]:
            data = _photo(name)
            ort_r, torch_r = (
                _detect(_stub(server), data, heatmap=True),
                _detect(_stub(torch_server), data, heatmap=True),
            )
            assert abs(ort_r.score - torch_r.score) <= RUNTIME_TOLERANCE
            assert ort_r.valid_patches == torch_r.valid_patches
            assert list(ort_r.heatmap.scores) == pytest.approx(list(torch_r.heatmap.scores), abs=RUNTIME_TOLERANCE)
    finally:
        server.stop()


def test_splicebuster_serves_through_the_same_path(tmp_path):
    path = tmp_path / "splicebuster.pt"
    make_splicebuster_checkpoint(path)
    server = _serve(path)  # runtime auto: the identity exports, so ONNX Runtime
    try:
        data = _photo(PHOTOS[0])
        r = _detect(_stub(server), data, heatmap=True)
        assert 0.0 <= r.score <= 1.0 and not r.uncertain and r.valid_patches > 0
        assert r.method == "splicebuster" and r.model_arch == "splicebuster" and not r.placeholder
        assert "gaussian_outlier" in r.preprocessing
        assert r.heatmap.rows * r.heatmap.cols == len(r.heatmap.scores)
        offline = serving_path.consistency_scores(load_checkpoint(path), [data])[0]
        assert r.score == pytest.approx(offline.score, abs=1e-5)
    finally:
        server.stop()


def test_a_queue_smaller_than_one_image_is_refused_at_start(consistency_checkpoint):
    """max_patches rows must fit in the queue, or no image could ever be scored."""
    import asyncio

    from prometheus_client import CollectorRegistry

    from services.common.config import SynthesisConfig, load
    from services.synthesis.engine import SynthesisEngine

    config = load(
        SynthesisConfig,
        environ={},
        model_path=str(consistency_checkpoint),
        max_queue_size=100,
        max_batch_size=64,
        torch_threads=1,
    )
    engine = SynthesisEngine(config)
    try:
        with pytest.raises(ValueError, match=r"cannot hold one image .*512 patch feature rows"):
            asyncio.run(engine.load(CollectorRegistry()))
    finally:
        asyncio.run(engine.close())
