"""Fits the serving rule (global weight) and Platt calibration on held-out validation images.

The checkpoint carries both (TilingSpec.global_weight, CalibrationSpec), and serving applies
them through services.synthesis.scoring.image_scores; here they are chosen on the validation
split (photos never trained on), scored through the serving path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from services.synthesis import preprocess, scoring
from training import metrics, serving_path

GLOBAL_WEIGHTS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # candidate weights of the global score
# Candidate local aggregates (name, top_k): with many small tiles, averaging a few more of
# the top tiles can be steadier than the top two.
LOCAL_RULES = (("top_k_mean", 2), ("top_k_mean", 4), ("top_k_mean", 8), ("max", 1), ("mean", 1))
PLATT_STEPS = 300  # LBFGS iterations at most; two parameters converge in a few dozen


def _combined_prob(
    raw: Sequence[serving_path.ImageLogits], tiling: preprocess.TilingSpec, a: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Differentiable scoring.image_scores with Platt(a, b), a > 0 (top-k order is unchanged)."""
    out = []
    for r in raw:
        p = torch.sigmoid(a * torch.tensor(r.logits, dtype=torch.float64) + b)
        if r.grid is None or len(r.logits) == 1:
            out.append(p[0])
            continue
        tiles = p[1:]
        if tiling.local_aggregate == "max":
            local = tiles.max()
        elif tiling.local_aggregate == "mean":
            local = tiles.mean()
        else:
            local = torch.topk(tiles, min(tiling.top_k, tiles.numel())).values.mean()
        out.append(tiling.global_weight * p[0] + (1 - tiling.global_weight) * local)
    return torch.stack(out).clamp(1e-6, 1 - 1e-6)


def fit_platt(
    raw: Sequence[serving_path.ImageLogits], labels: np.ndarray, tiling: preprocess.TilingSpec
) -> scoring.CalibrationSpec:
    """Platt a, b minimising the log loss of the FINAL combined score on labels."""
    log_a = torch.zeros((), dtype=torch.float64, requires_grad=True)  # a = exp(log_a) > 0
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    y = torch.tensor(labels, dtype=torch.float64)
    opt = torch.optim.LBFGS([log_a, b], max_iter=PLATT_STEPS, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy(_combined_prob(raw, tiling, log_a.exp(), b), y)
        loss.backward()
        return loss

    opt.step(closure)
    return scoring.CalibrationSpec(method="platt", a=float(log_a.detach().exp()), b=float(b.detach()))


def choose_rule(
    raw: Sequence[serving_path.ImageLogits], labels: np.ndarray, tiling: preprocess.TilingSpec
) -> tuple[preprocess.TilingSpec, dict[str, float]]:
    """The global weight and local aggregate with the best validation ROC-AUC (ties: the
    current rule first)."""
    if not tiling.enabled:
        return tiling, {}
    aucs, candidates = {}, []
    for agg, k in LOCAL_RULES:
        for w in GLOBAL_WEIGHTS:
            candidate = dataclasses.replace(tiling, global_weight=w, local_aggregate=agg, top_k=k)
            key = f"{agg}{k if agg == 'top_k_mean' else ''} w{w:g}"
            aucs[key] = metrics.roc_auc(serving_path.final_scores(raw, candidate, scoring.CalibrationSpec()), labels)
            candidates.append((round(aucs[key], 4), candidate == tiling, candidate))
    best = max(candidates, key=lambda c: (c[0], c[1]))[2]
    return best, aucs
