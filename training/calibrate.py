"""Fits the serving rule (global weight) and Platt calibration on held-out validation images.

The checkpoint carries both (TilingSpec.global_weight, CalibrationSpec), and serving applies
them through services.synthesis.scoring.combine; here they are chosen on the validation
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
PLATT_STEPS = 300  # LBFGS iterations at most; two parameters converge in a few dozen


def _combined_prob(raw: Sequence[serving_path.ImageLogits], tiling: preprocess.TilingSpec,
                   a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Differentiable scoring.combine with Platt(a, b), a > 0 (top-k order is unchanged)."""
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


def fit_platt(raw: Sequence[serving_path.ImageLogits], labels: np.ndarray,
              tiling: preprocess.TilingSpec) -> scoring.CalibrationSpec:
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


def choose_rule(raw: Sequence[serving_path.ImageLogits], labels: np.ndarray,
                tiling: preprocess.TilingSpec) -> tuple[preprocess.TilingSpec, dict[str, float]]:
    """The global weight with the best validation ROC-AUC (ties: the current weight)."""
    if not tiling.enabled:
        return tiling, {}
    aucs = {}
    for w in GLOBAL_WEIGHTS:
        candidate = dataclasses.replace(tiling, global_weight=w)
        aucs[f"{w:g}"] = metrics.roc_auc(serving_path.combine(raw, candidate, scoring.CalibrationSpec()), labels)
    best = max(GLOBAL_WEIGHTS, key=lambda w: (round(aucs[f"{w:g}"], 4), w == tiling.global_weight))
    return dataclasses.replace(tiling, global_weight=best), aucs
