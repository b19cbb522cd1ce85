"""Detection metrics on (score, label) pairs, in numpy: no scikit-learn dependency.

Labels are 1 for composite, 0 for authentic; scores are probabilities in [0, 1] (higher
means more likely composite).
"""

from __future__ import annotations

import dataclasses

import numpy as np

ECE_BINS = 10  # equal-width confidence bins of the expected calibration error


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.int64).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return s, y


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve = P(score of a random positive > a random negative), ties 1/2
    (the Mann-Whitney U statistic with average ranks)."""
    s, y = _check(scores, labels)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC-AUC needs both classes")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_s = s[order]
    # Average ranks over ties (1-based).
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds decreasing, starting at (0, 0) with +inf."""
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(1, y.sum())]
    fpr = np.r_[0.0, fps / max(1, (1 - y).sum())]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def tpr_at_fpr(scores, labels, max_fpr: float) -> float:
    """The largest true-positive rate of any threshold whose false-positive rate is <= max_fpr."""
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def accuracy(scores, labels, threshold: float = 0.5) -> float:
    s, y = _check(scores, labels)
    return float(((s >= threshold).astype(np.int64) == y).mean())


def reliability(scores, labels, bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of the score: (mean score, fraction positive, count)."""
    s, y = _check(scores, labels)
    idx = np.minimum((s * bins).astype(np.int64), bins - 1)
    count = np.bincount(idx, minlength=bins).astype(np.float64)
    conf = np.bincount(idx, weights=s, minlength=bins)
    pos = np.bincount(idx, weights=y, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return conf / count, pos / count, count


def expected_calibration_error(scores, labels, bins: int = ECE_BINS) -> float:
    """Sum over bins of |mean score - fraction positive| weighted by the bin's share
    (Naeini et al. 2015; here on P(composite), the binary form)."""
    conf, frac, count = reliability(scores, labels, bins)
    ok = count > 0
    return float((np.abs(conf[ok] - frac[ok]) * count[ok]).sum() / count.sum())


@dataclasses.dataclass(frozen=True)
class Summary:
    n: int
    accuracy: float
    roc_auc: float
    tpr_at_1pct_fpr: float
    tpr_at_5pct_fpr: float
    ece: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def summarize(scores, labels) -> Summary:
    s, y = _check(scores, labels)
    return Summary(
        n=int(s.size),
        accuracy=accuracy(s, y),
        roc_auc=roc_auc(s, y),
        tpr_at_1pct_fpr=tpr_at_fpr(s, y, 0.01),
        tpr_at_5pct_fpr=tpr_at_fpr(s, y, 0.05),
        ece=expected_calibration_error(s, y),
    )
