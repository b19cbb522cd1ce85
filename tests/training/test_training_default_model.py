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
