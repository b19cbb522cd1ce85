"""The shipped default model: present, small, a trained checkpoint, and it separates
composites made by the HELD-OUT forger (never seen in training) from authentic photos."""

from __future__ import annotations

import numpy as np
import torch

from services.synthesis import DEFAULT_MODEL_PATH
from services.synthesis.checkpoint import load_checkpoint
from training import bsds as bsds_mod
from training import dataset, serving_path

MAX_BYTES = 20 * 1024 * 1024  # bytes: the repository limit for the shipped model
SAMPLE = 40  # held-out images (20 composites, 20 authentic): a few seconds on CPU


def test_default_model_is_a_small_trained_checkpoint():
    assert DEFAULT_MODEL_PATH.exists(), f"{DEFAULT_MODEL_PATH} missing: run training.export"
    assert DEFAULT_MODEL_PATH.stat().st_size <= MAX_BYTES
    ckpt = load_checkpoint(DEFAULT_MODEL_PATH)
    assert not ckpt.placeholder and ckpt.arch == "forensic"
    assert ckpt.training["recipe"] == "ours" and ckpt.training["history"]
    assert ckpt.calibration.method == "platt"


def test_default_model_scores_heldout_composites_above_authentic(bsds):
    torch.set_num_threads(1)
    ckpt = load_checkpoint(DEFAULT_MODEL_PATH)
    gen = dataset.CompositeGenerator(bsds_mod.list_photos("val", bsds), seed=2002, generator="heldout")
    samples = [gen[i] for i in range(SAMPLE)]
    scores = serving_path.score(ckpt, [s.data for s in samples])
    labels = np.array([s.label for s in samples])
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores[labels == 1].mean() > scores[labels == 0].mean()


def test_service_serves_the_default_model_without_configuration(server_factory, bsds):
    from imagetrust.v1 import common_pb2, synthesis_pb2, synthesis_pb2_grpc

    server = server_factory("synthesis", torch_threads=1)  # model_path empty: the default
    stub = synthesis_pb2_grpc.SynthesisDetectorStub(server.channel())
    sample = dataset.CompositeGenerator(bsds_mod.list_photos("val", bsds)[:4], seed=0, generator="heldout")[0]
    r = stub.Detect(synthesis_pb2.DetectRequest(image=common_pb2.Image(data=sample.data)), timeout=60.0)
    assert not r.placeholder and r.model_version == load_checkpoint(DEFAULT_MODEL_PATH).model_version
