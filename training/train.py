"""Trains a synthesis detector: python -m training.train --recipe paper|ours [overrides].

Structured after pytorch/vision references/classification/train.py: get_args_parser(),
train_one_epoch(), evaluate(), main(args). Multi-GPU with torchrun (DDP: one process per
GPU, DistributedSampler); plain `python -m` runs on one device (CPU or one GPU).

    python -m training.train --recipe ours  --output-dir training/out/ours
    torchrun --nproc_per_node=8 -m training.train --recipe ours --output-dir runs/ours

Writes into --output-dir: log.jsonl (one JSON line per epoch: losses, metrics, time),
best.pt (best validation loss, via services.synthesis.checkpoint) and model.pt (best
weights + the local/global rule and Platt calibration fitted on the validation split).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import pathlib
import subprocess
import time

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from services.synthesis import checkpoint as ckpt_mod
from services.synthesis.models import build_model
from training import bsds, calibrate, compose, dataset, metrics, serving_path, views

# Each recipe is a set of defaults; any flag given on the command line wins.
RECIPES: dict[str, dict] = {
    # The paper (JKIIT 2025): ResNet-50 (here from scratch: no pretrained weights can be
    # downloaded), 224x224 HLS-adjusted input with ImageNet normalisation, Adam, BCE,
    # batch 32, up to 100 epochs, early stopping after 3 epochs without a better validation
    # loss, a 70/30 split, one fixed (pickled) dataset of segment-pasted composites.
    "paper": dict(
        arch="resnet50",
        arch_kwargs={},
        input_size=224,
        tile_size=0,
        global_p=1.0,
        target="binary",
        epochs=100,
        batch_size=32,
        lr=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        schedule="constant",
        patience=3,
        val_fraction=0.3,
        train_samples=2000,
        val_samples=400,
        fresh_samples=False,
        recompress_p=0.0,
        flip=False,
        views_per_sample=1,
        max_tiles=16,
        generator="train",
    ),
    # Ours: the compact forensic net (SRM + Bayar high-pass front end) on native-resolution
    # 64 px tiles (up to 40: a 481x321 photo is covered whole; 4x cheaper per view than
    # 128 px, so 4x more steps fit the CPU budget: a 128 px run learned nothing in 240
    # steps, see docs/training.md) plus the global view, soft targets from the tampered fraction, fresh
    # composites every epoch, a second JPEG generation and flips as augmentation; AdamW with
    # a cosine schedule. All 40 epochs took 13.6 min on a 2-core CPU (docs/model-card.md).
    # Generator "train" (segment pastes): "diverse" (more methods and post-processing) was
    # measured with a longer (24 min) budget and did not generalise better to the held-out forger.
    "ours": dict(
        arch="forensic",
        arch_kwargs={},
        input_size=64,
        tile_size=64,
        max_tiles=40,
        global_p=0.1,
        target="soft",
        epochs=40,
        batch_size=64,
        lr=2e-3,
        weight_decay=1e-4,
        optimizer="adamw",
        schedule="cosine",
        patience=10,
        val_fraction=0.15,
        train_samples=2560,
        val_samples=512,
        fresh_samples=True,
        recompress_p=0.3,
        flip=True,
        views_per_sample=4,
        generator="train",
    ),
}
CALIBRATION_IMAGES = 240  # validation images scored through the serving path to fit the rule
WARMUP_STEPS = 50  # optimiser steps of linear learning-rate warm-up (cosine schedule)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="ImageTrust synthesis-detector training", add_help=add_help)
    p.add_argument("--recipe", choices=sorted(RECIPES), default="ours", help="defaults for everything below")
    p.add_argument("--arch", help="services.synthesis.models arch")
    p.add_argument("--arch-kwargs", type=json.loads, help="JSON, e.g. '{\"width\": 12}'")
    p.add_argument("--input-size", type=int, help="px, global view edge")
    p.add_argument("--tile-size", type=int, help="px, native tiles (0: global view only)")
    p.add_argument("--max-tiles", type=int, help="tiles scored per image at most (serving)")
    p.add_argument("--global-p", type=float, help="share of training views that are global views")
    p.add_argument("--target", choices=views.TARGETS, help="binary labels or soft (area-fraction) targets")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="per process")
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--optimizer", choices=("adam", "adamw"))
    p.add_argument("--schedule", choices=("constant", "cosine"))
    p.add_argument("--patience", type=int, help="epochs without a better validation loss before stopping")
    p.add_argument("--val-fraction", type=float, help="share of BSDS train PHOTOS held out for validation")
    p.add_argument("--train-samples", type=int, help="views per epoch")
    p.add_argument("--val-samples", type=int, help="validation views")
    p.add_argument(
        "--fresh-samples",
        type=lambda s: s.lower() in ("1", "true", "yes"),
        help="new composites every epoch (true) or one fixed dataset (false)",
    )
    p.add_argument("--recompress-p", type=float, help="probability of a second JPEG generation")
    p.add_argument("--flip", type=lambda s: s.lower() in ("1", "true", "yes"))
    p.add_argument("--views-per-sample", type=int, help="views (tiles/global) taken from each generated sample")
    p.add_argument(
        "--generator",
        choices=("train", "diverse"),
        help="training composites: the paper's segment pastes (train) or every training method (diverse)",
    )
    p.add_argument(
        "--methods",
        type=lambda s: tuple(m for m in s.split(",") if m),
        help="comma-separated compositing methods, a subset of training.compose.TRAIN_METHODS "
        "(default: the generator's own)",
    )
    p.add_argument("--max-photos", type=int, default=0, help="use only this many BSDS photos (tests)")
    p.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES)
    p.add_argument("--time-limit-min", type=float, default=0.0, help="stop training after this many minutes (0: none)")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many optimiser steps (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes per rank")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads per process")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--bsds-root", default=str(bsds.DEFAULT_ROOT))
    p.add_argument("--output-dir", default="training/out/run")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars (logs only)")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fills every flag the user did not give from the recipe."""
    for key, value in RECIPES[args.recipe].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    methods = getattr(args, "methods", None)
    if methods is not None:
        unknown = [m for m in methods if m not in compose.TRAIN_METHODS]
        if unknown or not methods:
            raise SystemExit(
                f"--methods: {', '.join(unknown) or 'empty'} not in {', '.join(compose.TRAIN_METHODS)} "
                "(held-out methods never train)"
            )
    return args


# ---- distributed ------------------------------------------------------------------------


def init_distributed(args: argparse.Namespace) -> None:
    args.world_size = int(os.environ.get("WORLD_SIZE", "1"))
    args.rank = int(os.environ.get("RANK", "0"))
    args.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    args.distributed = args.world_size > 1
    cuda = torch.cuda.is_available() and args.device in ("auto", "cuda")
    if args.distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(args.local_rank)
        args.torch_device = torch.device("cuda", args.local_rank)
    else:
        args.torch_device = torch.device("cpu")


def is_main(args) -> bool:
    return args.rank == 0


def _any_rank(flag: bool, args) -> bool:
    """True on every rank if it is True on any (so all ranks stop at the same step)."""
    if not args.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=args.torch_device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


# ---- one epoch --------------------------------------------------------------------------


def train_one_epoch(model, optimizer, scheduler, loader, args, epoch: int, state: dict) -> dict[str, float]:
    model.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch} train", disable=args.no_progress or not is_main(args), leave=False)
    for x, y, _label in bar:
        x, y = x.to(args.torch_device, non_blocking=True), y.to(args.torch_device, non_blocking=True)
        loss = F.binary_cross_entropy_with_logits(model(x), y)  # BCE; soft targets when y is fractional
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        state["steps"] += 1
        total += loss.item() * x.shape[0]
        count += x.shape[0]
        bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        out_of_time = args.time_limit_min > 0 and time.monotonic() - state["t0"] > args.time_limit_min * 60
        out_of_steps = args.max_steps > 0 and state["steps"] >= args.max_steps
        if _any_rank(out_of_time or out_of_steps, args):
            state["stop_reason"] = "time limit" if out_of_time else "max steps"
            break
    if args.distributed:
        t = torch.tensor([total, count], device=args.torch_device, dtype=torch.float64)
        dist.all_reduce(t)
        total, count = float(t[0]), float(t[1])
    return {"train_loss": total / max(1, count), "train_views": int(count)}


@torch.no_grad()
def evaluate(model, loader, args, desc: str = "val") -> dict[str, float]:
    """Loss against the recipe's targets, plus accuracy / ROC-AUC of the views against the
    image labels. Every rank evaluates the whole (small) set: identical early-stopping
    decisions on all ranks without any communication."""
    model.eval()
    losses, probs, labels = [], [], []
    for x, y, label in tqdm(loader, desc=desc, disable=args.no_progress or not is_main(args), leave=False):
        logits = model(x.to(args.torch_device)).float().cpu()
        losses.append(F.binary_cross_entropy_with_logits(logits, y, reduction="none"))
        probs.append(torch.sigmoid(logits))
        labels.append(label)
    loss = torch.cat(losses).mean().item()
    p, lab = torch.cat(probs).numpy(), torch.cat(labels).numpy().astype(int)
    out = {"val_loss": loss, "val_view_accuracy": metrics.accuracy(p, lab)}
    if 0 < lab.sum() < lab.size:
        out["val_view_auc"] = metrics.roc_auc(p, lab)
    return out


# ---- main -------------------------------------------------------------------------------


def _git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                cwd=pathlib.Path(__file__).parent,
                timeout=5,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _specs(args):
    if args.arch in ("forensic", "tiny"):
        pre, tiling = ckpt_mod.default_specs(args.arch)
        pre = dataclasses.replace(pre, input_size=args.input_size)
    else:
        pre, tiling = ckpt_mod.paper_specs(args.input_size)
    if args.tile_size > 0:
        base = tiling if tiling.enabled else ckpt_mod.default_specs("forensic")[1]
        tiling = dataclasses.replace(base, tile_size=args.tile_size, stride=args.tile_size, max_tiles=args.max_tiles)
    else:
        tiling = dataclasses.replace(tiling, tile_size=0)
    return pre, tiling


def _loader(ds, args, shuffle: bool, train: bool):
    sampler = None
    if args.distributed and train:
        # Each rank reads its own part; unshuffled parts are contiguous, so a rank still
        # reads the views of one sample together.
        sampler = torch.utils.data.distributed.DistributedSampler(ds, shuffle=shuffle, seed=args.seed)
        if not shuffle:
            per_rank = len(ds) // args.world_size
            sampler = range(args.rank * per_rank, (args.rank + 1) * per_rank)
    return torch.utils.data.DataLoader(
        ds,
        batch_size=args.batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=args.workers,
        pin_memory=args.torch_device.type == "cuda",
        drop_last=train,
        generator=torch.Generator().manual_seed(args.seed),
    )


def _metadata(args, pre, tiling, history, extra) -> dict:
    keys = sorted(RECIPES["ours"])
    return {
        "recipe": args.recipe,
        "command": "python -m training.train " + " ".join(getattr(args, "argv", [])),
        "hyperparameters": {k: getattr(args, k) for k in keys},
        "seed": args.seed,
        "dataset": f"BSDS500 train photos (composites made by training.dataset, generator '{args.generator}'"
        + (f", methods {','.join(args.methods)}" if args.methods else "")
        + ")",
        "world_size": args.world_size,
        "git_commit": _git_commit(),
        "trained_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "history": history,
        **extra,
    }


def main(args: argparse.Namespace) -> pathlib.Path | None:
    args = resolve(args)
    init_distributed(args)
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed + args.rank)
    out_dir = pathlib.Path(args.output_dir)
    if is_main(args):
        out_dir.mkdir(parents=True, exist_ok=True)

    photos = bsds.list_photos("train", args.bsds_root)
    if args.max_photos:
        photos = photos[: args.max_photos]
    train_photos, val_photos = bsds.split_photos(photos, args.val_fraction, args.seed)
    pre, tiling = _specs(args)
    view_args = dict(
        spec=pre, tile_size=tiling.tile_size, global_p=args.global_p if tiling.enabled else 1.0, target=args.target
    )
    train_gen = dataset.CompositeGenerator(train_photos, seed=args.seed, generator=args.generator, methods=args.methods)
    train_ds = views.ViewDataset(
        train_gen,
        args.train_samples,
        recompress_p=args.recompress_p,
        flip=args.flip,
        seed=args.seed,
        views_per_sample=args.views_per_sample,
        **view_args,
    )
    # Validation views never change between epochs: early stopping compares like with like.
    val_gen = dataset.CompositeGenerator(val_photos, seed=args.seed + 1, generator=args.generator, methods=args.methods)
    val_ds = views.ViewDataset(
        val_gen, args.val_samples, seed=args.seed + 1, views_per_sample=args.views_per_sample, **view_args
    )
    # Fresh samples are already random per index: read them in order (views of one sample
    # are consecutive). A fixed dataset (the paper's) is shuffled every epoch.
    train_loader = _loader(train_ds, args, shuffle=not args.fresh_samples, train=True)
    val_loader = _loader(val_ds, args, shuffle=False, train=False)

    model = build_model(args.arch, **args.arch_kwargs).to(args.torch_device)
    if args.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[args.local_rank] if args.torch_device.type == "cuda" else None
        )
    raw_model = model.module if args.distributed else model
    opt_cls = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(raw_model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = None
    if args.schedule == "cosine":
        total_steps = max(1, args.epochs * len(train_loader))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: min(1.0, (s + 1) / WARMUP_STEPS) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total_steps))),
        )

    version = f"{args.arch}-{args.recipe}-{datetime.date.today():%Y%m%d}-{_git_commit()}"
    state = {"t0": time.monotonic(), "steps": 0, "stop_reason": "epochs"}
    history, best_loss, best_state, bad_epochs = [], math.inf, None, 0
    log_path = out_dir / "log.jsonl"
    if is_main(args):
        log_path.write_text("")
        print(
            f"[train] recipe {args.recipe}: {args.arch}, {len(train_photos)} train / {len(val_photos)} val photos, "
            f"{args.train_samples} views/epoch, device {args.torch_device}, world {args.world_size}",
            flush=True,
        )
    for epoch in range(args.epochs):
        if args.fresh_samples:
            train_ds.offset = epoch * args.train_samples
        if isinstance(train_loader.sampler, torch.utils.data.distributed.DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        t_epoch = time.monotonic()
        row = {"epoch": epoch, **train_one_epoch(model, optimizer, scheduler, train_loader, args, epoch, state)}
        row.update(evaluate(raw_model, val_loader, args))
        row.update(
            lr=optimizer.param_groups[0]["lr"],
            epoch_s=round(time.monotonic() - t_epoch, 1),
            elapsed_s=round(time.monotonic() - state["t0"], 1),
            steps=state["steps"],
        )
        improved = row["val_loss"] < best_loss - 1e-6
        if improved:
            best_loss, bad_epochs = row["val_loss"], 0
            best_state = {k: v.detach().cpu().clone() for k, v in raw_model.state_dict().items()}
        else:
            bad_epochs += 1
        row["best"] = improved
        history.append(row)
        if is_main(args):
            with log_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print("[train] " + json.dumps(row), flush=True)
            if improved:
                ckpt_mod.save_checkpoint(
                    out_dir / "best.pt",
                    best_state,
                    arch=args.arch,
                    arch_kwargs=args.arch_kwargs,
                    model_version=version,
                    preprocessing=pre,
                    tiling=tiling,
                    training=_metadata(args, pre, tiling, history, {"epoch": epoch}),
                )
        if bad_epochs >= args.patience:
            state["stop_reason"] = f"early stopping (patience {args.patience})"
            break
        if state["stop_reason"] != "epochs":
            break

    result = None
    if is_main(args):
        result = _finish(args, raw_model, best_state, val_gen, pre, tiling, version, history, state, out_dir)
    if args.distributed:
        dist.barrier()
        dist.destroy_process_group()
    return result


def _finish(args, model, best_state, val_gen, pre, tiling, version, history, state, out_dir) -> pathlib.Path:
    """Best weights + the serving rule and Platt calibration fitted on validation IMAGES."""
    model.load_state_dict(best_state)
    model.eval()
    n = max(2, args.calibration_images - args.calibration_images % 2)  # balanced: even count
    samples = [val_gen[100_000 + i] for i in range(n)]  # indices apart from the val views
    labels = np.array([s.label for s in samples])
    raw = serving_path.image_logits(model, pre, tiling, [s.data for s in samples], args.torch_device)
    tiling, rule_aucs = calibrate.choose_rule(raw, labels, tiling)
    calibration = calibrate.fit_platt(raw, labels, tiling)
    scores = serving_path.final_scores(raw, tiling, calibration)
    val_summary = metrics.summarize(scores, labels).as_dict()
    train_s = round(time.monotonic() - state["t0"], 1)
    extra = {
        "stop_reason": state["stop_reason"],
        "train_wall_s": train_s,
        "steps": state["steps"],
        "validation_images": val_summary,
        "global_weight_auc": rule_aucs,
        "soft_saturation": views.SOFT_SATURATION,
    }
    path = out_dir / "model.pt"
    ckpt_mod.save_checkpoint(
        path,
        best_state,
        arch=args.arch,
        arch_kwargs=args.arch_kwargs,
        model_version=version,
        preprocessing=pre,
        tiling=tiling,
        calibration=calibration,
        training=_metadata(args, pre, tiling, history, extra),
    )
    summary = {
        "model": str(path),
        "stop_reason": state["stop_reason"],
        "train_wall_s": train_s,
        "tiling": tiling.describe(),
        "calibration": dataclasses.asdict(calibration),
        "validation_images": val_summary,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("[train] done " + json.dumps(summary), flush=True)
    return path


if __name__ == "__main__":
    import sys

    parsed = get_args_parser().parse_args()
    parsed.argv = sys.argv[1:]
    main(parsed)
