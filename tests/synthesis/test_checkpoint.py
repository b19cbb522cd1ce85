"""The checkpoint format round-trips everything serving needs, loads weights_only, and
refuses files it cannot serve."""

from __future__ import annotations

import pytest
import torch

from services.synthesis import traces
from services.synthesis.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    default_specs,
    load_checkpoint,
    paper_specs,
    save_checkpoint,
)
from services.synthesis.consistency import ConsistencySpec, ScorerSpec
from services.synthesis.models import build_model
from services.synthesis.preprocess import PreprocessSpec, TilingSpec
from services.synthesis.scoring import CalibrationSpec
from services.synthesis.traces import SamplingSpec
from tests.helpers.checkpoints import make_consistency_checkpoint, make_splicebuster_checkpoint

torch.set_num_threads(1)


def test_round_trip_keeps_weights_and_declared_specs(tmp_path):
    torch.manual_seed(0)
    model = build_model("tiny", width=4)
    pre, _ = paper_specs(input_size=64)
    tiling = TilingSpec(tile_size=64, stride=32, max_tiles=9, local_aggregate="max", global_weight=0.3)
    calib = CalibrationSpec(method="platt", a=0.8, b=-0.2)
    path = tmp_path / "m.pt"
    save_checkpoint(
        path,
        model,
        arch="tiny",
        arch_kwargs={"width": 4},
        preprocessing=pre,
        tiling=tiling,
        calibration=calib,
        model_version="tiny-test-1",
        training={"dataset": "bsds500-composites", "recipe": {"epochs": 1}, "metrics": {"auc": 0.5}},
    )
    raw = torch.load(path, weights_only=True)  # loadable without unpickling code
    assert raw["format_version"] == FORMAT_VERSION
    ckpt = load_checkpoint(path)
    assert ckpt.arch == "tiny" and ckpt.arch_kwargs == {"width": 4}
    assert ckpt.preprocessing == pre
    assert ckpt.preprocessing.colour_space == "hls_rgb"
    assert (ckpt.preprocessing.lightness_gain, ckpt.preprocessing.saturation_gain) == (1.2, 0.9)
    assert ckpt.preprocessing.mean == (0.485, 0.456, 0.406)
    assert ckpt.tiling == tiling and ckpt.calibration == calib
    assert ckpt.model_version == "tiny-test-1" and ckpt.placeholder is False
    assert ckpt.training["metrics"] == {"auc": 0.5}
    rebuilt = ckpt.build()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model.eval()(x))
    assert "L x1.2, S x0.9" in ckpt.describe()


def test_defaults_follow_arch(tmp_path):
    ckpt = save_checkpoint(tmp_path / "f.pt", build_model("forensic"), arch="forensic", model_version="f0")
    pre, tiling = default_specs("forensic")
    assert load_checkpoint(tmp_path / "f.pt").preprocessing == pre == ckpt.preprocessing
    assert tiling.tile_size == pre.input_size == 256


def test_refuses_foreign_newer_and_mismatched_files(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an ImageTrust"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    ckpt = save_checkpoint(tmp_path / "ok.pt", build_model("tiny"), arch="tiny", model_version="t")
    raw = ckpt.to_dict()
    raw["format_version"] = FORMAT_VERSION + 1
    torch.save(raw, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="upgrade the server"):
        load_checkpoint(tmp_path / "newer.pt")
    raw = ckpt.to_dict()
    raw["arch_kwargs"] = {"width": 5}
    torch.save(raw, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "mismatch.pt").build()


def test_metadata_must_be_json_like(tmp_path):
    with pytest.raises(CheckpointError, match="JSON-like"):
        save_checkpoint(
            tmp_path / "x.pt", build_model("tiny"), arch="tiny", model_version="t", training={"when": object()}
        )
    assert not (tmp_path / "x.pt").exists()


def test_specs_validate():
    with pytest.raises(ValueError):
        PreprocessSpec(colour_space="yuv")
    with pytest.raises(ValueError):
        TilingSpec(global_weight=1.5)
    with pytest.raises(ValueError):
        CalibrationSpec(method="isotonic")


def test_version_1_files_still_load_without_consistency(tmp_path):
    ckpt = save_checkpoint(tmp_path / "t.pt", build_model("tiny"), arch="tiny", model_version="t1")
    raw = ckpt.to_dict()
    del raw["consistency"]  # exactly what a version-1 writer saved
    raw["format_version"] = 1
    torch.save(raw, tmp_path / "v1.pt")
    old = load_checkpoint(tmp_path / "v1.pt")
    assert old.consistency is None and old.format_version == 1 and old.arch == "tiny"
    assert old.build() is not None


def test_consistency_spec_round_trips_in_version_2(tmp_path):
    spec = ConsistencySpec(
        sampling=SamplingSpec(min_stride=48, max_patches=200, min_valid_patches=10),
        scorer=ScorerSpec(top_fraction=0.1, pair_scale=3.5, pair_bias=-2.0, a=2.0, b=-1.5),
    )
    make_consistency_checkpoint(tmp_path / "c.pt", consistency=spec)
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert raw["format_version"] == FORMAT_VERSION == 2 and isinstance(raw["consistency"], dict)
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt.consistency == spec and ckpt.arch == "consistency"
    assert ckpt.arch_kwargs["in_features"] == 2 * traces.feature_count()
    assert (ckpt.preprocessing, ckpt.tiling) == default_specs("consistency")
    assert not ckpt.tiling.enabled
    described = ckpt.describe()
    assert "patches 64px" in described and "max 200" in described and "traces-v1" in described
    assert "scorer embedding" in described
    x = torch.randn(5, 2 * traces.feature_count())
    out = ckpt.build()(x)
    assert out.shape == (5, 8) and torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)
    sb = make_splicebuster_checkpoint(tmp_path / "sb.pt")
    loaded = load_checkpoint(tmp_path / "sb.pt")
    assert loaded.consistency == sb.consistency and loaded.consistency.scorer.method == "gaussian_outlier"
    assert "features cooccurrence" in loaded.describe()


def test_arch_and_consistency_spec_must_agree(tmp_path):
    with pytest.raises(CheckpointError, match="needs a consistency spec"):
        save_checkpoint(tmp_path / "a.pt", build_model("splicebuster"), arch="splicebuster", model_version="s")
    with pytest.raises(CheckpointError, match="scores images"):
        save_checkpoint(
            tmp_path / "b.pt", build_model("tiny"), arch="tiny", model_version="t", consistency=ConsistencySpec()
        )
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()
    # A file that pairs them wrongly is refused at load time too.
    raw = make_consistency_checkpoint(tmp_path / "c.pt").to_dict()
    raw["consistency"] = None
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="needs a consistency spec"):
        load_checkpoint(tmp_path / "bad.pt")
    raw = save_checkpoint(tmp_path / "t.pt", build_model("tiny"), arch="tiny", model_version="t").to_dict()
    raw["consistency"] = ConsistencySpec().to_dict()
    torch.save(raw, tmp_path / "bad2.pt")
    with pytest.raises(CheckpointError, match="scores images"):
        load_checkpoint(tmp_path / "bad2.pt")
