"""ONNX export: ONNX Runtime (CPU) against torch eager on the same inputs, the contract and
Triton files, and the synthesis service with runtime=onnxruntime.

Parity tolerance: services.synthesis.onnx_runtime.PARITY_TOLERANCE (1e-3 in a logit; a
served score moves by at most a quarter of that). Real preprocessing of a real photo feeds
both, with the tiny test checkpoints (random weights) and the shipped model.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from imagetrust.v1 import common_pb2, synthesis_pb2, synthesis_pb2_grpc
from services.synthesis import DEFAULT_MODEL_PATH, traces
from services.synthesis.checkpoint import load_checkpoint
from services.synthesis.onnx_runtime import OPSET, PARITY_TOLERANCE, OrtPredictor
from services.synthesis.preprocess import prepare
from services.synthesis.scoring import image_scores
from tests.helpers.checkpoints import make_consistency_checkpoint
from tests.helpers.paths import SAMPLES
from training import export_onnx

from .conftest import encode, photo

SCORE_TOLERANCE = PARITY_TOLERANCE / 4  # sigmoid's slope is at most 1/4


def _model_inputs(ckpt) -> tuple[list[torch.Tensor], object]:
    with Image.open(SAMPLES / "camera_original.jpg") as img:
        prepared = prepare(img.convert("RGB"), ckpt.preprocessing, ckpt.tiling)
    return prepared.items(), prepared


@pytest.mark.parametrize("which", ["tiny", "forensic"])
def test_onnx_runtime_matches_torch_on_real_inputs(which, tiny_checkpoint, forensic_checkpoint, tmp_path):
    path = {"tiny": tiny_checkpoint, "forensic": forensic_checkpoint}[which]
    written = export_onnx.export(pathlib.Path(path), tmp_path)
    ckpt = load_checkpoint(path)
    model = onnx.load(tmp_path / "model.onnx")
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == OPSET == written["onnx"]["opset"]
    assert written["parity"]["max_abs_logit_diff"] <= PARITY_TOLERANCE

    inputs, prepared = _model_inputs(ckpt)
    assert len(inputs) > 1  # global view plus tiles: one batch of several inputs
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    torch_model = ckpt.build("cpu")
    for batch in (inputs[:1], inputs):  # batch 1 and the whole image: the batch axis is dynamic
        x = torch.stack(batch)
        with torch.inference_mode():
            expected = torch_model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == expected.shape == (len(batch),)
        assert np.abs(got - expected).max() <= PARITY_TOLERANCE
    # The served score (tiles aggregated, calibrated) agrees too.
    torch_score = image_scores(expected.tolist(), prepared.grid, ckpt.tiling, ckpt.calibration).score
    ort_score = image_scores(got.tolist(), prepared.grid, ckpt.tiling, ckpt.calibration).score
    assert abs(torch_score - ort_score) <= SCORE_TOLERANCE


def test_the_contract_and_the_triton_entry(tiny_checkpoint, tmp_path):
    export_onnx.main([str(tiny_checkpoint), str(tmp_path), "--triton"])
    contract = json.loads((tmp_path / "contract.json").read_text())
    ckpt = load_checkpoint(tiny_checkpoint)
    assert contract["model_version"] == ckpt.model_version and contract["placeholder"] is True
    assert contract["onnx"]["inputs"][0]["shape"] == ["batch", 3, 64, 64]
    assert contract["preprocessing"]["input_size"] == 64 and contract["tiling"]["tile_size"] == 64
    assert contract["calibration"]["method"] == ckpt.calibration.method
    assert any("scoring" in step for step in contract["outside_the_graph"])
    config = (tmp_path / "triton" / "synthesis_detector" / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in config and "dynamic_batching {" in config
    assert "max_batch_size: 64" in config and "dims: [ 3, 64, 64 ]" in config
    triton_model = tmp_path / "triton" / "synthesis_detector" / "1" / "model.onnx"
    assert triton_model.read_bytes() == (tmp_path / "model.onnx").read_bytes()


def test_a_bad_checkpoint_is_refused_with_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert export_onnx.main([str(bad), str(tmp_path / "out")]) == 1
    assert "not a readable torch checkpoint" in capsys.readouterr().err


def test_the_ort_predictor_refuses_what_it_cannot_run(tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint)
    with pytest.raises(RuntimeError, match="float32"):
        OrtPredictor(ckpt, torch.device("cpu"), "bf16")
    with pytest.raises(RuntimeError, match="CPU"):
        OrtPredictor(ckpt, torch.device("cuda"), "auto")


def test_the_service_with_runtime_onnxruntime_scores_as_torch_does(server_factory, tiny_checkpoint):
    data = encode(photo(240, 320, seed=3), "JPEG", quality=90)
    scores = {}
    for runtime in ("torch", "onnxruntime"):
        server = server_factory("synthesis", model_path=str(tiny_checkpoint), runtime=runtime, torch_threads=1)
        with server.channel() as channel:
            reply = synthesis_pb2_grpc.SynthesisDetectorStub(channel).Detect(
                synthesis_pb2.DetectRequest(image=common_pb2.Image(data=data)), timeout=30
            )
        scores[runtime] = reply
    assert scores["onnxruntime"].model_version == scores["torch"].model_version
    assert abs(scores["onnxruntime"].score - scores["torch"].score) <= SCORE_TOLERANCE
    assert abs(scores["onnxruntime"].local_score - scores["torch"].local_score) <= SCORE_TOLERANCE


def test_auto_runs_onnxruntime_on_a_cpu_at_fp32_and_torch_otherwise(server_factory, tiny_checkpoint):
    from services.synthesis.onnx_runtime import resolve_runtime
    from services.synthesis.predictor import Predictor

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_runtime("auto", cpu, "auto") == resolve_runtime("auto", cpu, "fp32") == "onnxruntime"
    assert resolve_runtime("auto", cpu, "bf16") == resolve_runtime("auto", cuda, "auto") == "torch"
    assert resolve_runtime("torch", cpu, "auto") == "torch"
    default = server_factory("synthesis", model_path=str(tiny_checkpoint), torch_threads=1)
    assert isinstance(default.service.engine.predictor, OrtPredictor)
    pinned = server_factory("synthesis", model_path=str(tiny_checkpoint), torch_threads=1, runtime="torch")
    assert isinstance(pinned.service.engine.predictor, Predictor)


def test_a_consistency_checkpoint_exports_with_its_contract(tmp_path):
    path = tmp_path / "consistency.pt"
    make_consistency_checkpoint(path, embed_dim=8)
    assert export_onnx.main([str(path), str(tmp_path / "out"), "--triton"]) == 0
    contract = json.loads((tmp_path / "out" / "contract.json").read_text())
    features = 2 * traces.feature_count()
    assert contract["onnx"]["inputs"][0]["shape"] == ["batch", features]
    assert contract["onnx"]["outputs"][0]["shape"] == ["batch", 8]
    assert contract["consistency"] == load_checkpoint(path).consistency.to_dict()
    assert contract["parity"]["max_abs_logit_diff"] <= PARITY_TOLERANCE
    config = (tmp_path / "out" / "triton" / "synthesis_detector" / "config.pbtxt").read_text()
    assert f"dims: [ {features} ]" in config and "dims: [ 8 ]" in config and "reshape" not in config


def test_the_shipped_model_scores_the_same_under_onnx_runtime(tmp_path):
    """The shipped consistency embedder: ORT rows equal torch rows on a real photo's
    feature rows, and so does the served score."""
    from services.synthesis.consistency import prepare_patches, score_patches

    written = export_onnx.export(DEFAULT_MODEL_PATH, tmp_path)
    assert written["parity"]["max_abs_logit_diff"] <= PARITY_TOLERANCE
    ckpt = load_checkpoint(DEFAULT_MODEL_PATH)
    assert ckpt.consistency is not None
    with Image.open(SAMPLES / "camera_original.jpg") as img:
        prepared = prepare_patches(np.asarray(img.convert("RGB")), ckpt.consistency)
    assert len(prepared.inputs) >= ckpt.consistency.sampling.min_valid_patches
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = ckpt.build("cpu")(torch.from_numpy(prepared.inputs)).numpy()
    got = session.run(None, {"input": prepared.inputs})[0]
    assert got.shape == expected.shape and np.abs(got - expected).max() <= PARITY_TOLERANCE
    a = score_patches(expected, prepared.valid, prepared.grid, ckpt.consistency).score
    b = score_patches(got, prepared.valid, prepared.grid, ckpt.consistency).score
    assert abs(a - b) <= SCORE_TOLERANCE
