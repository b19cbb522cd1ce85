"""Evaluates synthesis checkpoints and writes the report (markdown + ROC and reliability plots).

    python -m training.evaluate --model ours=services/synthesis/weights/default.pt \\
        --model paper=training/out/paper/model.pt --out training/reports

Test sets, all made from BSDS500 VAL photos (never used in training):
- val: the training generator (segment pasting and its variants, training post-processing);
- heldout: a DIFFERENT forger: rectangular / elliptical splices and Poisson seamless
  cloning (cv2.seamlessClone), saved with Pillow JPEG (other qualities and subsamplings) or
  WebP after bicubic / Lanczos resizing;
- each again after JPEG re-compression at quality 75 ("+jpeg75").
Every image is scored from its encoded bytes through the serving path (training.serving_path:
the service's decoder, preprocessing and local/global rule, as the checkpoint declares).
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
from training import bsds, dataset, metrics, postprocess, serving_path

RECOMPRESS_QUALITY = 75  # JPEG quality of the re-compression condition
DEFAULT_IMAGES = 400  # per set: each of the 100 val photos twice as authentic, twice as background
SET_SEEDS = {"val": 1001, "heldout": 2002}  # generator seeds of the test sets (fixed: comparable reports)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate synthesis checkpoints; write a report", add_help=add_help)
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="checkpoint to evaluate (repeatable), e.g. ours=services/synthesis/weights/default.pt",
    )
    p.add_argument("--images", type=int, default=DEFAULT_IMAGES, help="images per test set (half composites)")
    p.add_argument("--max-photos", type=int, default=0, help="use only this many BSDS val photos (tests)")
    p.add_argument("--bsds-root", default=str(bsds.DEFAULT_ROOT))
    p.add_argument("--out", default="training/reports", help="report directory")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (matplotlib not needed)")
    return p


def build_sets(n: int, photos: list[bsds.Photo]) -> dict[str, list[dataset.Sample]]:
    sets = {}
    for name, seed in SET_SEEDS.items():
        gen = dataset.CompositeGenerator(photos, seed=seed, generator="train" if name == "val" else name)
        sets[name] = [gen[i] for i in range(n)]
    return sets


def _files(samples: list[dataset.Sample], recompress: bool) -> list[bytes]:
    return [postprocess.recompress_jpeg(s.data, RECOMPRESS_QUALITY) if recompress else s.data for s in samples]


def evaluate_models(
    models: dict[str, pathlib.Path], sets: dict[str, list[dataset.Sample]], device: str = "cpu"
) -> dict:
    """{model: {set: {"summary": ..., "scores": [...], "labels": [...], "methods": [...]}}}"""
    files = {}
    for name, samples in sets.items():
        files[name] = _files(samples, False)
        files[f"{name}+jpeg{RECOMPRESS_QUALITY}"] = _files(samples, True)
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
        for set_name, data in files.items():
            samples = sets[set_name.split("+")[0]]
            t0 = time.monotonic()
            scores = serving_path.score(ckpt, data, device, model=model)
            labels = np.array([s.label for s in samples])
            methods = [s.method for s in samples]
            per_method = {}
            for m in sorted(set(methods) - {"authentic"}):
                keep = np.array([x in (m, "authentic") for x in methods])
                per_method[m] = metrics.roc_auc(scores[keep], labels[keep])
            results[model_name]["sets"][set_name] = {
                "summary": metrics.summarize(scores, labels).as_dict(),
                "auc_by_method": per_method,
                "seconds": round(time.monotonic() - t0, 1),
                "scores": scores.tolist(),
                "labels": labels.tolist(),
            }
            print(
                f"[evaluate] {model_name} {set_name}: " + json.dumps(results[model_name]["sets"][set_name]["summary"]),
                flush=True,
            )
    return results


def plot(results: dict, out: pathlib.Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    set_names = list(next(iter(results.values()))["sets"])
    fig, axes = plt.subplots(1, len(set_names), figsize=(4.2 * len(set_names), 4.0), dpi=80)
    for ax, set_name in zip(np.atleast_1d(axes), set_names):
        for model_name, r in results.items():
            s = r["sets"][set_name]
            fpr, tpr, _ = metrics.roc_curve(s["scores"], s["labels"])
            ax.plot(fpr, tpr, label=f"{model_name} (AUC {s['summary']['roc_auc']:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
        ax.set(title=set_name, xlabel="false-positive rate", ylabel="true-positive rate", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower right", fontsize=8)
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


def render(results: dict, n: int, plots: list[str], wall_s: float) -> str:
    set_names = list(next(iter(results.values()))["sets"])
    lines = [
        "# Synthesis detector evaluation",
        "",
        f"Generated by `python -m training.evaluate` on {datetime.date.today():%Y-%m-%d} in {wall_s:.0f} s "
        "(2-core shared CI-class VM, no GPU). "
        f"{n} images per set (half composites), all from BSDS500 **val** photos, which no model trained on. "
        "Scores come from the encoded files through the serving path (decoder, preprocessing, "
        "local/global rule and calibration declared by each checkpoint).",
        "",
        "- **val**: the training generator (segment pasting: plain, feathered, colour-matched, scaled, "
        "copy-move; cv2 JPEG q60-100 or PNG, area/bilinear resize).",
        "- **heldout**: a different forger and pipeline: rectangle / ellipse splices and Poisson seamless "
        "cloning (normal, mixed, copy-move); Pillow JPEG q55-95 (4:4:4 or 4:2:0) or WebP q60-95, "
        "bicubic / Lanczos resize x0.6-1.4.",
        f"- **+jpeg{RECOMPRESS_QUALITY}**: the same files re-compressed with JPEG quality {RECOMPRESS_QUALITY}.",
        "",
        "| model | set | accuracy@0.5 | ROC-AUC | TPR@1%FPR | TPR@5%FPR | ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for model_name, r in results.items():
        for set_name in set_names:
            s = r["sets"][set_name]["summary"]
            lines.append(
                f"| {model_name} | {set_name} | {s['accuracy']:.3f} | {s['roc_auc']:.3f} | "
                f"{s['tpr_at_1pct_fpr']:.3f} | {s['tpr_at_5pct_fpr']:.3f} | {s['ece']:.3f} |"
            )
    lines += ["", "ROC-AUC per compositing method (that method's composites vs all authentic images):", ""]
    methods = sorted({m for r in results.values() for s in r["sets"].values() for m in s["auc_by_method"]})
    for model_name, r in results.items():
        for set_name in set_names:
            by = r["sets"][set_name]["auc_by_method"]
            if by:
                lines.append(
                    f"- {model_name} / {set_name}: " + ", ".join(f"{m} {by[m]:.3f}" for m in methods if m in by)
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
    photos = bsds.list_photos("val", args.bsds_root)
    if args.max_photos:
        photos = photos[: args.max_photos]
    sets = build_sets(args.images, photos)
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
    report.write_text(render(results, args.images, plots, time.monotonic() - t0))
    print(f"[evaluate] wrote {report}", flush=True)
    return report


if __name__ == "__main__":
    main(get_args_parser().parse_args())
