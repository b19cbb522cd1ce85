"""Evaluates synthesis checkpoints side by side and writes the report (markdown, ROC and
reliability plots, metrics.json).

    python -m training.evaluate \\
        --model consistency=services/synthesis/weights/default.pt \\
        --model splicebuster=training/out/splicebuster/model.pt \\
        --model forensic=training/out/forensic/model.pt \\
        --model paper=training/out/paper/model.pt --out training/reports

Sets (training/heldout_sets.py, recipes written apart from the training generator):
- camera: cross-camera composites of camera makes held out of training, each against its
  twin (the same host crop saved the same way without the paste);
- bsds: the paper's same-pipeline composites from BSDS500 val, each against its twin;
- each under three conditions: as made, re-encoded at JPEG q75, downscaled to 1280 px;
- originals: the untouched files of the held-out makes (false-alarm rates).
Every image is scored from its encoded bytes through the serving path (training.serving_path).
An "uncertain" answer (too few valid patches) counts as score 0: the gateway ignores it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import time

import numpy as np
import torch

from services.synthesis.checkpoint import load_checkpoint
from training import heldout_sets, metrics, serving_path

DEFAULT_PAIRS = 100  # composite/twin pairs per camera set
DEFAULT_BSDS_PAIRS = 100
# Score thresholds whose false-alarm rates are reported: the gateway policy counts a score from
# 0.5 (min_score) and sends it to REVIEW on its own from 0.625 (review 0.50 / weight 0.8).
POLICY_THRESHOLDS = (0.5, 0.625, 0.7, 0.8, 0.9)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate synthesis checkpoints; write a report", add_help=add_help)
    p.add_argument("--model", action="append", required=True, metavar="NAME=PATH", help="checkpoint (repeatable)")
    p.add_argument("--pairs", type=int, default=DEFAULT_PAIRS, help="cross-camera composite/twin pairs")
    p.add_argument("--bsds-pairs", type=int, default=DEFAULT_BSDS_PAIRS, help="same-pipeline composite/twin pairs")
    p.add_argument("--conditions", default=",".join(heldout_sets.CONDITIONS))
    p.add_argument("--max-originals", type=int, default=0, help="use only this many originals (tests)")
    p.add_argument("--out", default="training/reports", help="report directory")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (matplotlib not needed)")
    return p


def build_sets(args: argparse.Namespace) -> dict[str, tuple[list[bytes], np.ndarray]]:
    base = {
        "camera": heldout_sets.camera_composites(args.pairs),
        "bsds": heldout_sets.bsds_composites(args.bsds_pairs),
    }
    sets = {}
    for name, items in base.items():
        labels = np.array([label for _, label in items])
        for cond in args.conditions.split(","):
            files = [heldout_sets.apply_condition(data, cond) for data, _ in items]
            sets[f"{name}/{cond}"] = (files, labels)
    originals = heldout_sets.genuine_originals()
    if args.max_originals:
        originals = originals[: args.max_originals]
    sets["originals"] = ([d for d, _ in originals], np.zeros(len(originals), int))
    return sets


def evaluate_models(models: dict[str, pathlib.Path], sets: dict, device: str = "cpu") -> dict:
    """{model: {set: {"summary" | "false_alarm": ..., "scores", "labels", "uncertain"}}}"""
    results: dict = {}
    for model_name, path in models.items():
        ckpt = load_checkpoint(path)
        model = ckpt.build(device)
        results[model_name] = {
            "checkpoint": str(path),
            "model_version": ckpt.model_version,
            "arch": ckpt.arch,
            "describe": ckpt.describe(),
            "sets": {},
        }
        for set_name, (files, labels) in sets.items():
            t0 = time.monotonic()
            scores, uncertain = serving_path.scores_and_uncertain(ckpt, files, device, model=model)
            entry: dict = {
                "seconds": round(time.monotonic() - t0, 1),
                "scores": scores.tolist(),
                "labels": labels.tolist(),
                "uncertain": int(np.sum(uncertain)),
                "images": len(files),
            }
            if labels.any():
                entry["summary"] = metrics.summarize(scores, labels).as_dict()
            entry["false_alarm"] = {f"{t:g}": float(np.mean(scores[labels == 0] >= t)) for t in POLICY_THRESHOLDS}
            results[model_name]["sets"][set_name] = entry
            shown = entry.get("summary", entry["false_alarm"])
            print(f"[evaluate] {model_name} {set_name} ({entry['seconds']} s): {json.dumps(shown)}", flush=True)
    return results


def _composite_sets(results: dict) -> list[str]:
    first = next(iter(results.values()))["sets"]
    return [name for name, entry in first.items() if "summary" in entry]


def plot(results: dict, out: pathlib.Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    set_names = _composite_sets(results)
    cols = min(3, len(set_names))
    rows = (len(set_names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), dpi=80, squeeze=False)
    for ax, set_name in zip(axes.ravel(), set_names):
        for model_name, r in results.items():
            s = r["sets"][set_name]
            fpr, tpr, _ = metrics.roc_curve(s["scores"], s["labels"])
            ax.plot(fpr, tpr, label=f"{model_name} (AUC {s['summary']['roc_auc']:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
        ax.set(title=set_name, xlabel="false-positive rate", ylabel="true-positive rate", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower right", fontsize=8)
    for ax in axes.ravel()[len(set_names) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "roc.png")
    plt.close(fig)

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4.0), dpi=80, squeeze=False)
    for ax, (model_name, r) in zip(axes[0], results.items()):
        for set_name in set_names:
            s = r["sets"][set_name]
            conf, frac, count = metrics.reliability(s["scores"], s["labels"])
            ok = count > 0
            ax.plot(conf[ok], frac[ok], "o-", ms=3, label=f"{set_name} (ECE {s['summary']['ece']:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
        ax.set(
            title=f"reliability: {model_name}",
            xlabel="mean score in bin",
            ylabel="fraction composite",
            xlim=(0, 1),
            ylim=(0, 1.01),
        )
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "reliability.png")
    plt.close(fig)
    return ["roc.png", "reliability.png"]


def render(results: dict, args: argparse.Namespace, plots: list[str], wall_s: float) -> str:
    set_names = _composite_sets(results)
    lines = [
        "# Synthesis detector evaluation",
        "",
        f"Generated by `python -m training.evaluate` on {datetime.date.today():%Y-%m-%d} in {wall_s:.0f} s "
        "(2-core shared VM, no GPU). Every image is scored from its encoded file through the serving path; "
        "an uncertain answer counts as score 0.",
        "",
        f"- **camera**: {args.pairs} cross-camera composites of camera makes held out of training "
        "(hosts and donors from different makes; random-walk blob or star masks; donor scaled x0.7-1.25 with "
        "Lanczos or area; hard paste, feathered alpha or Poisson cloning; an editor-like save: Pillow "
        "optimize/progressive q85-95 or OpenCV q88-97 on an off-grid crop), each against its twin saved alike.",
        f"- **bsds**: {args.bsds_pairs} same-pipeline composites, the paper's way (a BSDS500 val segment "
        "scaled x0.6-1.2 and pasted into another val photo, OpenCV JPEG q70-95), each against its twin.",
        "- **/jpeg75**: the same files re-encoded at q75; **/1280px**: downscaled to a 1280 px long edge, q90.",
        "- **originals**: the untouched files of the held-out camera makes.",
        "",
        "These recipes are written apart from the training generator (training/canvas.py: ellipse, polygon, "
        "rectangle and BSDS-segment masks, linear blends, its own final histories) and use no training or "
        "calibration camera make.",
        "",
        "| model | set | ROC-AUC | TPR@1%FPR | TPR@5%FPR | ECE | accuracy@0.5 | uncertain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model_name, r in results.items():
        for set_name in set_names:
            e = r["sets"][set_name]
            s = e["summary"]
            lines.append(
                f"| {model_name} | {set_name} | {s['roc_auc']:.3f} | {s['tpr_at_1pct_fpr']:.3f} | "
                f"{s['tpr_at_5pct_fpr']:.3f} | {s['ece']:.3f} | {s['accuracy']:.3f} | {e['uncertain']}/{e['images']} |"
            )
    thresholds = list(POLICY_THRESHOLDS)
    lines += [
        "",
        "Genuine camera originals of held-out makes: the share scoring at or above each threshold.",
        "",
        "| model | images | " + " | ".join(f">= {t:g}" for t in thresholds) + " | uncertain |",
        "|---|---|" + "---|" * len(thresholds) + "---|",
    ]
    for model_name, r in results.items():
        e = r["sets"].get("originals")
        if e:
            lines.append(
                f"| {model_name} | {e['images']} | "
                + " | ".join(f"{e['false_alarm'][f'{t:g}']:.3f}" for t in thresholds)
                + f" | {e['uncertain']} |"
            )
    lines += ["", "Models:", ""]
    for model_name, r in results.items():
        lines.append(f"- **{model_name}**: `{r['model_version']}` ({r['arch']}; {r['describe']}), `{r['checkpoint']}`")
    if plots:
        lines += ["", "![ROC curves](roc.png)", "", "![Reliability diagrams](reliability.png)"]
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> pathlib.Path:
    torch.set_num_threads(max(1, args.threads))
    t0 = time.monotonic()
    models = {}
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--model expects NAME=PATH, got {spec!r}")
        models[name] = pathlib.Path(path)
    sets = build_sets(args)
    results = evaluate_models(models, sets, args.device)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plots = [] if args.no_plots else plot(results, out)
    compact = {
        m: {
            **{k: v for k, v in r.items() if k != "sets"},
            "sets": {s: {k: v for k, v in d.items() if k not in ("scores", "labels")} for s, d in r["sets"].items()},
        }
        for m, r in results.items()
    }
    (out / "metrics.json").write_text(json.dumps(compact, indent=2) + "\n")
    report = out / "report.md"
    report.write_text(render(results, args, plots, time.monotonic() - t0))
    print(f"[evaluate] wrote {report}", flush=True)
    return report


if __name__ == "__main__":
    main(get_args_parser().parse_args())
