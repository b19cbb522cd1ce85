"""Trains the patch-consistency embedder on feature shards (training/consistency_data.py).

    python -m training.train_consistency --shards training/out/shards --out training/out/consistency

Signal: within one canvas, patches of the same pipeline are "same" and host vs donor
patches are "different" (no hand-labelled composites; pristine canvases give only "same"
pairs). Loss: balanced binary cross-entropy of P(different) = sigmoid(scale * d + bias) on
every pair of valid, unambiguous patches of a canvas, d the squared distance of their unit
embeddings. Model selection: the epoch with the best canvas-level ROC-AUC on the validation
shards (validation makes only), using the serving statistic (consistency.py).

Deterministic by --seed on one process. DDP: `torchrun --nproc_per_node N -m
training.train_consistency ...` splits each epoch's canvases across ranks (gloo on CPU,
nccl on CUDA); the same command runs on a GPU, with CUDA autocast (bf16) for the MLP.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.nn import functional as F

from services.synthesis import traces
from services.synthesis.consistency import ScorerSpec, embedding_outliers
from services.synthesis.models import ConsistencyEmbedder
from training import metrics
from training.consistency_data import PATCHES_PER_CANVAS, load_shards

HOST_MAX = 0.05  # donor fraction at most this: a host patch
DONOR_MIN = 0.5  # donor fraction at least this: a donor patch (in between: ambiguous, no pairs)


def canvas_tensors(data: dict[str, np.ndarray], spec: traces.SamplingSpec) -> dict[str, torch.Tensor]:
    """Per canvas, padded to PATCHES_PER_CANVAS: context inputs (C, P, 2F), pair labels."""
    canvas = data["canvas"]
    order = np.argsort(canvas, kind="stable")
    ids, starts = np.unique(canvas[order], return_index=True)
    n, p, f = len(ids), PATCHES_PER_CANVAS, data["features"].shape[1]
    x = np.zeros((n, p, 2 * f), np.float32)
    label = np.full((n, p), -1, np.int8)  # -1 invalid/ambiguous, 0 host, 1 donor
    usable = np.zeros((n, p), bool)  # valid: enters the context median and the statistic
    composite = np.zeros(n, bool)
    bounds = list(starts) + [len(order)]
    for k in range(n):
        rows = order[bounds[k] : bounds[k + 1]][:p]
        feats = data["features"][rows]
        valid = data["valid"][rows]
        m = len(rows)
        x[k, :m] = traces.with_context(feats, valid)
        usable[k, :m] = valid
        frac = data["fraction"][rows]
        lab = np.where(frac <= HOST_MAX, 0, np.where(frac >= DONOR_MIN, 1, -1))
        label[k, :m] = np.where(valid, lab, -1)
        composite[k] = bool(data["composite"][rows].any() and (label[k] == 1).any())
    return {
        "x": torch.from_numpy(x),
        "label": torch.from_numpy(label),
        "usable": torch.from_numpy(usable),
        "composite": torch.from_numpy(composite),
    }


def pair_loss(model: torch.nn.Module, core: ConsistencyEmbedder, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """model: the embedder or its DDP wrapper (forward); core: the embedder (pair parameters)."""
    b, p, f = x.shape
    emb = model(x.reshape(b * p, f)).float().reshape(b, p, -1)
    d = (2.0 - 2.0 * emb @ emb.transpose(1, 2)).clamp(0.0, 4.0)
    logits = core.pair_scale * d + core.pair_bias
    known = label >= 0
    pair_ok = known[:, :, None] & known[:, None, :]
    pair_ok &= ~torch.eye(p, dtype=torch.bool, device=x.device)[None]
    target = (label[:, :, None] != label[:, None, :]).float()
    pos = (pair_ok & (target > 0)).sum().clamp(min=1)
    neg = (pair_ok & (target == 0)).sum().clamp(min=1)
    # Balanced: "different" pairs are rare (donor patches are a minority, half the
    # canvases have none); each class weighs half of the loss.
    weight = torch.where(target > 0, 0.5 / pos, 0.5 / neg) * pair_ok
    return (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).sum()


@torch.no_grad()
def canvas_auc(model: ConsistencyEmbedder, val: dict[str, torch.Tensor], device: torch.device) -> tuple[float, float]:
    """(ROC-AUC, TPR at 5% FPR) of the serving statistic, composite vs pristine canvases."""
    model.eval()
    spec = ScorerSpec(pair_scale=float(model.pair_scale.detach()), pair_bias=float(model.pair_bias.detach()))
    stats = []
    for k in range(len(val["x"])):
        use = val["usable"][k]
        if use.sum() < 4:
            stats.append(0.0)
            continue
        emb = model(val["x"][k][use].to(device)).float().cpu().numpy()
        out = embedding_outliers(emb, spec)
        kk = max(1, int(np.ceil(spec.top_fraction * len(out))))
        stats.append(float(np.sort(out)[-kk:].mean()))
    labels = val["composite"].numpy().astype(int)
    return metrics.roc_auc(stats, labels), metrics.tpr_at_fpr(stats, labels, 0.05)


def get_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=pathlib.Path, default=pathlib.Path("training/out/shards"))
    ap.add_argument("--train-glob", default="train-*.npz")
    ap.add_argument("--val-glob", default="val-*.npz")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("training/out/consistency"))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-canvases", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--embed-dim", type=int, default=32)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> pathlib.Path:
    args = get_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    rank, world = 0, 1
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.manual_seed(args.seed)
    spec = traces.SamplingSpec()
    train = canvas_tensors(load_shards(sorted(args.shards.glob(args.train_glob))), spec)
    val = canvas_tensors(load_shards(sorted(args.shards.glob(args.val_glob))), spec)
    in_features = train["x"].shape[2]
    kwargs = {
        "in_features": in_features,
        "hidden": args.hidden,
        "depth": args.depth,
        "embed_dim": args.embed_dim,
        "dropout": args.dropout,
    }
    model = ConsistencyEmbedder(**kwargs)
    rows = train["x"][train["usable"]]
    stats = {"feature_mean": rows.mean(dim=0), "feature_std": rows.std(dim=0).clamp(min=1e-3)}
    model.load_state_dict({**model.state_dict(), **stats})
    model.to(device)
    net: torch.nn.Module = model
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    n = len(train["x"])
    steps = args.epochs * ((n // world + args.batch_canvases - 1) // args.batch_canvases)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=max(1, steps), pct_start=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    history = []
    best: tuple[float, dict[str, torch.Tensor]] = (-1.0, {})
    started = time.monotonic()
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(n, generator=gen)[rank::world]
        total, batches = 0.0, 0
        for s in range(0, len(order), args.batch_canvases):
            idx = order[s : s + args.batch_canvases]
            x = train["x"][idx].to(device, non_blocking=True)
            label = train["label"][idx].to(device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = pair_loss(net, model, x, label)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            batches += 1
        auc, tpr5 = canvas_auc(model, val, device)
        row = {
            "epoch": epoch + 1,
            "train_loss": total / max(1, batches),
            "val_auc": auc,
            "val_tpr5": tpr5,
            "seconds": round(time.monotonic() - started, 1),
        }
        history.append(row)
        if rank == 0:
            print(json.dumps(row), flush=True)
        if auc > best[0]:
            best = (auc, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    path = args.out / "embedder.pt"
    if rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "arch_kwargs": kwargs,
                "state_dict": best[1],
                "history": history,
                "args": {k: str(v) for k, v in vars(args).items()},
                "world_size": world,
                "device": str(device),
            },
            path,
        )
        print(f"best val canvas AUC {best[0]:.4f}; saved {path}")
    if distributed:
        dist.destroy_process_group()
    return path


if __name__ == "__main__":
    main()
