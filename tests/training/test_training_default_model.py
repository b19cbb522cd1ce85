"""The shipped default model: present, small, a calibrated consistency checkpoint, and it
scores cross-camera composites of held-out makes above their twins saved alike."""

from __future__ import annotations

import numpy as np
import torch

from services.synthesis import DEFAULT_MODEL_PATH
from services.synthesis.checkpoint import load_checkpoint
from training import heldout_sets, serving_path

MAX_BYTES = 20 * 1024 * 1024  # bytes: the repository limit for the shipped model
PAIRS = 8  # composite/twin pairs of held-out camera makes: a few seconds on CPU


def test_default_model_is_a_small_calibrated_consistency_checkpoint():
    assert DEFAULT_MODEL_PATH.exists(), f"{DEFAULT_MODEL_PATH} missing: run training.export"
    assert DEFAULT_MODEL_PATH.stat().st_size <= MAX_BYTES
    ckpt = load_checkpoint(DEFAULT_MODEL_PATH)
    assert not ckpt.placeholder and ckpt.arch == "consistency" and ckpt.consistency is not None
    assert ckpt.training["history"] and ckpt.training["calibration"]["genuine_false_alarm_rate"]["0.5"] <= 0.05
    assert ckpt.consistency.scorer.method == "embedding" and ckpt.consistency.scorer.a > 0


def test_default_model_scores_heldout_camera_composites_above_their_twins():
    torch.set_num_threads(1)
    ckpt = load_checkpoint(DEFAULT_MODEL_PATH)
    items = heldout_sets.camera_composites(PAIRS, seed=777)
    scores = serving_path.score(ckpt, [data for data, _ in items])
    labels = np.array([label for _, label in items])
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores[labels == 1].mean() > scores[labels == 0].mean()


def test_service_serves_the_default_model_without_configuration(server_factory):
    from imagetrust.v1 import common_pb2, synthesis_pb2, synthesis_pb2_grpc

    server = server_factory("synthesis", torch_threads=1)  # model_path empty: the default
    stub = synthesis_pb2_grpc.SynthesisDetectorStub(server.channel())
    data = heldout_sets.camera_composites(1, seed=778)[0][0]
    r = stub.Detect(synthesis_pb2.DetectRequest(image=common_pb2.Image(data=data)), timeout=60.0)
    assert not r.placeholder and r.model_version == load_checkpoint(DEFAULT_MODEL_PATH).model_version
    assert r.method == "consistency" and not r.uncertain and r.valid_patches > 0
