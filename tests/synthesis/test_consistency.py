"""The consistency scorer: outlying patches, the image statistic, calibration, uncertainty."""

from __future__ import annotations

import numpy as np
import pytest

from services.synthesis import consistency, traces

GRID = traces.PatchGrid(tuple(range(0, 8 * 64, 64)), tuple(range(0, 8 * 64, 64)), 64, 64)  # 8 x 8


def _two_groups(n: int, minority: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=16)
    b = -a
    emb = np.stack([a] * (n - minority) + [b] * minority) + 0.05 * rng.normal(size=(n, 16))
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def test_minority_patches_are_the_outliers():
    emb = _two_groups(64, 8, np.random.default_rng(0))
    out = consistency.embedding_outliers(emb, consistency.ScorerSpec())
    assert out[-8:].min() > out[:-8].max()


def test_a_split_image_scores_higher_than_a_uniform_one():
    rng = np.random.default_rng(1)
    spec = consistency.ConsistencySpec()
    valid = np.ones(64, bool)
    split = consistency.score_patches(_two_groups(64, 8, rng), valid, GRID, spec, want_heatmap=True)
    uniform = consistency.score_patches(_two_groups(64, 0, rng), valid, GRID, spec)
    assert split.statistic > uniform.statistic + 0.5
    assert 0.0 <= uniform.score < split.score <= 1.0
    assert not split.uncertain and split.valid_patches == 64
    heat = np.array(split.heatmap)
    assert heat.shape == (8, 8)
    assert heat.ravel()[-8:].min() > heat.ravel()[:-8].max()  # the heatmap marks the donor


def test_too_few_valid_patches_is_uncertain():
    spec = consistency.ConsistencySpec()
    valid = np.zeros(64, bool)
    valid[:3] = True
    result = consistency.score_patches(_two_groups(3, 1, np.random.default_rng(2)), valid, GRID, spec)
    assert result.uncertain and result.score == 0.0 and result.valid_patches == 3


def test_invalid_patches_are_zero_in_the_heatmap():
    spec = consistency.ConsistencySpec()
    valid = np.ones(64, bool)
    valid[::2] = False
    result = consistency.score_patches(_two_groups(32, 4, np.random.default_rng(3)), valid, GRID, spec, True)
    heat = np.array(result.heatmap).ravel()
    assert (heat[::2] == 0).all() and (heat[1::2] > 0).all()


def test_gaussian_outlier_em_finds_injected_outliers():
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(120, 20))
    feats[:10] += 6.0
    spec = consistency.ScorerSpec(method="gaussian_outlier")
    posterior, d2 = consistency.gaussian_outliers(feats, spec)
    assert posterior[:10].mean() > 0.9 and posterior[10:].mean() < 0.2
    assert d2[:10].min() > np.median(d2[10:])


def test_calibration_is_monotone_in_the_statistic():
    spec = consistency.ConsistencySpec(scorer=consistency.ScorerSpec(a=8.0, b=-4.0))
    valid = np.ones(64, bool)
    scores = [
        consistency.score_patches(_two_groups(64, k, np.random.default_rng(5)), valid, GRID, spec) for k in (0, 2, 6)
    ]
    stats = [s.statistic for s in scores]
    probs = [s.score for s in scores]
    assert stats == sorted(stats) and probs == sorted(probs)


def test_spec_round_trips_through_a_dict():
    spec = consistency.ConsistencySpec(
        traces.SamplingSpec(max_patches=100),
        consistency.ScorerSpec(method="gaussian_outlier", a=2.0, b=-1.0),
        features="cooccurrence",
        context=False,
    )
    assert consistency.ConsistencySpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        consistency.ScorerSpec(method="vote")


def test_prepare_patches_of_a_flat_image_has_no_inputs():
    flat = np.full((480, 640, 3), 90, np.uint8)
    prep = consistency.prepare_patches(flat, consistency.ConsistencySpec())
    assert len(prep.grid) > 0 and prep.valid.sum() == 0 and prep.inputs.shape[0] == 0
