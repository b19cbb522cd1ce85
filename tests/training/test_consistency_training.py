"""End to end for the consistency model: shards -> embedder training -> calibrated
checkpoint -> the real synthesis service serving it; and the evaluation sets' contracts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.synthesis.checkpoint import load_checkpoint
from training import (
    build_consistency,
    canvas,
    consistency_data,
    fit_scorer,
    heldout_sets,
    serving_path,
    train_consistency,
)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    consistency_data.main(["--split", "train", "--canvases", "6", "--workers", "1", "--out", str(out)])
    consistency_data.main(["--split", "val", "--canvases", "6", "--workers", "1", "--out", str(out)])
    return out


def test_canvases_are_deterministic_and_labelled():
    gen = canvas.CanvasGenerator("train", seed=3)
    a, b = gen(5), gen(5)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.recipe == b.recipe
    composites = [gen(i) for i in range(12)]
    for c in composites:
        assert c.mask.shape == c.image.shape[:2]
        assert (c.mask.max() > 0) == c.composite
    assert any(c.composite for c in composites) and not all(c.composite for c in composites)


def test_shards_hold_features_labels_and_validity(shards):
    data = consistency_data.load_shards(sorted(shards.glob("train-*.npz")))
    n = 6 * consistency_data.PATCHES_PER_CANVAS
    assert data["features"].shape[0] == n and np.isfinite(data["features"]).all()
    assert set(np.unique(data["canvas"])) == set(range(6))
    assert ((data["fraction"] >= 0) & (data["fraction"] <= 1)).all()


def test_train_calibrate_and_score_like_the_service(shards, tmp_path):
    torch.set_num_threads(1)
    emb_path = train_consistency.main(
        [
            "--shards",
            str(shards),
            "--out",
            str(tmp_path),
            "--epochs",
            "2",
            "--hidden",
            "16",
            "--depth",
            "1",
            "--embed-dim",
            "8",
            "--batch-canvases",
            "4",
        ]
    )
    raw = torch.load(emb_path, weights_only=True)
    assert len(raw["history"]) == 2 and all(np.isfinite(r["train_loss"]) for r in raw["history"])
    model_path = tmp_path / "model.pt"
    fit_scorer.main(["--embedder", str(emb_path), "--out", str(model_path), "--canvases", "6", "--max-photos", "2"])
    ckpt = load_checkpoint(model_path)
    assert ckpt.arch == "consistency" and ckpt.consistency is not None
    assert "genuine_false_alarm_rate" in ckpt.training["calibration"]
    files = [data for data, _ in heldout_sets.camera_composites(1)]
    scores = serving_path.score(ckpt, files)
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()


def test_training_is_deterministic_by_seed(shards, tmp_path):
    torch.set_num_threads(1)
    args = ["--shards", str(shards), "--epochs", "1", "--hidden", "16", "--depth", "1", "--embed-dim", "8"]
    a = torch.load(train_consistency.main([*args, "--out", str(tmp_path / "a")]), weights_only=True)
    b = torch.load(train_consistency.main([*args, "--out", str(tmp_path / "b")]), weights_only=True)
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k])


def test_heldout_sets_pair_every_composite_with_a_twin():
    for items in (heldout_sets.camera_composites(2, seed=9), heldout_sets.bsds_composites(2, seed=9)):
        assert [label for _, label in items] == [1, 0, 1, 0]
        assert all(data[:2] == b"\xff\xd8" for data, _ in items)
    data = heldout_sets.camera_composites(1, seed=9)[0][0]
    for cond in heldout_sets.CONDITIONS:
        assert heldout_sets.apply_condition(data, cond)[:2] == b"\xff\xd8"
    with pytest.raises(ValueError):
        heldout_sets.apply_condition(data, "webp")


def test_the_one_command_builds_a_loadable_checkpoint(tmp_path):
    torch.set_num_threads(1)
    model = build_consistency.main(
        [
            "--out",
            str(tmp_path),
            "--train-canvases",
            "3",
            "--val-canvases",
            "3",
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--workers",
            "1",
            "--calibration-canvases",
            "4",
            "--calibration-photos",
            "1",
        ]
    )
    ckpt = load_checkpoint(model)
    assert ckpt.arch == "consistency" and ckpt.training["history"][0]["epoch"] == 1
