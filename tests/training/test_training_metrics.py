"""Evaluation metrics on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from training import metrics


def test_auc_of_perfect_inverted_and_constant_scorers():
    y = np.array([0, 0, 0, 1, 1, 1])
    assert metrics.roc_auc([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], y) == 1.0
    assert metrics.roc_auc([0.9, 0.8, 0.7, 0.3, 0.2, 0.1], y) == 0.0
    assert metrics.roc_auc([0.5] * 6, y) == 0.5  # all ties count one half


def test_auc_of_a_random_scorer_is_one_half():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20_000)
    assert metrics.roc_auc(rng.random(y.size), y) == pytest.approx(0.5, abs=0.01)


def test_auc_equals_pairwise_probability_and_the_curve_area():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(60, int), np.ones(40, int)]
    s = np.round(rng.random(100) + 0.4 * y, 2)  # rounding makes ties
    pos, neg = s[y == 1], s[y == 0]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (40 * 60)
    assert metrics.roc_auc(s, y) == pytest.approx(pairwise)
    fpr, tpr, _ = metrics.roc_curve(s, y)
    assert np.trapezoid(tpr, fpr) == pytest.approx(pairwise)


def test_tpr_at_fpr():
    # 100 negatives at 0..0.99, positives: 10 above every negative, 10 just above the 3 top negatives.
    neg = np.arange(100) / 100
    pos = np.r_[np.full(10, 2.0), np.full(10, 0.975)]
    s, y = np.r_[neg, pos], np.r_[np.zeros(100, int), np.ones(20, int)]
    assert metrics.tpr_at_fpr(s, y, 0.01) == 0.5  # 1 negative allowed: threshold above 0.99 only
    assert metrics.tpr_at_fpr(s, y, 0.05) == 1.0  # 0.975 passes 2 negatives (0.98, 0.99)
    assert metrics.tpr_at_fpr(s, y, 0.0) == 0.5


def test_accuracy_and_ece():
    y = np.array([0, 1, 0, 1])
    assert metrics.accuracy([0.2, 0.8, 0.6, 0.4], y) == 0.5
    assert metrics.expected_calibration_error([1.0, 1.0, 1.0, 1.0], y) == pytest.approx(0.5)
    assert metrics.expected_calibration_error([0.0, 1.0, 0.0, 1.0], y) == pytest.approx(0.0)
    rng = np.random.default_rng(2)
    p = rng.random(50_000)
    assert metrics.expected_calibration_error(p, (rng.random(p.size) < p).astype(int)) < 0.01


def test_metrics_refuse_bad_input():
    with pytest.raises(ValueError):
        metrics.roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError):
        metrics.roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError):
        metrics.accuracy([0.1], [0, 1])
