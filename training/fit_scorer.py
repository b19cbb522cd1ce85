"""Calibrates a consistency scorer on validation makes and writes the serving checkpoint.

    python -m training.fit_scorer --embedder training/out/consistency/embedder.pt \\
        --out training/out/consistency/model.pt
    python -m training.fit_scorer --splicebuster --out training/out/splicebuster/model.pt

Calibration data (validation makes only: never the report's test makes or BSDS val):
- genuine: every validation-make original as-is, re-saved at JPEG q75 and q90, and
  downscaled to 1280 px (q90): what honest sellers upload;
- composites and their pristine twins: training-recipe canvases of validation-make photos
  at up to 2048 px (so patch counts match real uploads).
The image statistic (consistency.py) is mapped to a probability by Platt scaling. If more
than --max-genuine-fpr of the genuine images would then score >= 0.5, the intercept is
shifted down until they do not (a prior shift: composites are rare among real uploads, and
a false accusation costs more than a miss). The false-alarm rate at every policy threshold
is recorded in the checkpoint's training metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import io
import pathlib
import subprocess

import cv2
import numpy as np
import torch
from PIL import Image

from services.synthesis.checkpoint import save_checkpoint
from services.synthesis.consistency import ConsistencySpec, ScorerSpec
from services.synthesis.models import ConsistencyEmbedder, Passthrough
from services.synthesis.traces import SamplingSpec
from training import camera_photos, serving_path
from training.canvas import CanvasGenerator

THRESHOLDS = (0.5, 0.625, 0.7, 0.8, 0.9)  # score thresholds of the gateway policy (docs/gateway.md) and above
CALIBRATION_CANVASES = 240
CALIBRATION_SEED = 4242


def _resave(rgb: np.ndarray, quality: int, long_edge: int = 0) -> np.ndarray:
    if long_edge and max(rgb.shape[:2]) > long_edge:
        s = long_edge / max(rgb.shape[:2])
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def calibration_images(
    canvases: int = CALIBRATION_CANVASES, max_photos: int = 0
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(images, labels, genuine-photo flag)."""
    images, labels, genuine = [], [], []
    val_photos = camera_photos.photos("val")
    for photo in val_photos[:max_photos] if max_photos else val_photos:
        rgb = camera_photos.load_rgb(photo.path)
        for img in (rgb, _resave(rgb, 75), _resave(rgb, 90), _resave(rgb, 90, 1280)):
            images.append(img)
            labels.append(0)
            genuine.append(True)
    gen = CanvasGenerator("val", seed=CALIBRATION_SEED, max_side=2048)
    for i in range(canvases):
        c = gen(i)
        images.append(c.image)
        labels.append(int(c.composite))
        genuine.append(False)
    return images, np.array(labels), np.array(genuine)


def statistics(
    model: torch.nn.Module, spec: ConsistencySpec, images: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(statistic, uncertain) per image, exactly as serving computes them (a=1, b=0)."""
    raw = dataclasses.replace(spec, scorer=dataclasses.replace(spec.scorer, a=1.0, b=0.0))
    results = serving_path.patch_scores(model, raw, images)
    return np.array([r.statistic for r in results]), np.array([r.uncertain for r in results])


def fit_platt(x: np.ndarray, y: np.ndarray, iterations: int = 500) -> tuple[float, float]:
    """Logistic regression of y on x (Newton's method, a tiny L2 for separable data)."""
    mu, sd = float(x.mean()), float(x.std() + 1e-9)
    z = (x - mu) / sd
    w = np.zeros(2)
    design = np.stack([z, np.ones_like(z)], axis=1)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(design @ w)))
        grad = design.T @ (p - y) + 1e-3 * w
        hess = (design * (p * (1 - p))[:, None]).T @ design + 1e-3 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    a = w[0] / sd
    return float(a), float(w[1] - a * mu)


def false_alarm_rates(scores: np.ndarray, thresholds=THRESHOLDS) -> dict[str, float]:
    return {f"{t:g}": float((scores >= t).mean()) for t in thresholds}


def main(argv: list[str] | None = None) -> pathlib.Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", type=pathlib.Path, help="training/out/consistency/embedder.pt")
    ap.add_argument("--splicebuster", action="store_true", help="calibrate the zero-training baseline instead")
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--max-genuine-fpr", type=float, default=0.03, help="genuine images scoring >= 0.5, at most")
    ap.add_argument("--version", default="")
    ap.add_argument("--canvases", type=int, default=CALIBRATION_CANVASES, help="calibration canvases")
    ap.add_argument("--max-photos", type=int, default=0, help="use only this many validation photos (tests)")
    args = ap.parse_args(argv)
    if bool(args.embedder) == args.splicebuster:
        ap.error("give exactly one of --embedder PATH or --splicebuster")
    training_meta: dict = {}
    if args.splicebuster:
        arch, kwargs = "splicebuster", {"in_features": 81}
        model: torch.nn.Module = Passthrough(81)
        spec = ConsistencySpec(
            SamplingSpec(), ScorerSpec(method="gaussian_outlier"), features="cooccurrence", context=False
        )
    else:
        raw = torch.load(args.embedder, map_location="cpu", weights_only=True)
        arch, kwargs = "consistency", dict(raw["arch_kwargs"])
        model = ConsistencyEmbedder(**kwargs)
        model.load_state_dict(raw["state_dict"])
        spec = ConsistencySpec(
            SamplingSpec(),
            ScorerSpec(
                method="embedding",
                pair_scale=float(model.pair_scale.detach()),
                pair_bias=float(model.pair_bias.detach()),
            ),
            features="traces",
            context=True,
        )
        training_meta = {
            "history": raw["history"],
            "args": raw["args"],
            "world_size": raw["world_size"],
            "device": raw["device"],
        }
    model.eval()
    images, labels, genuine = calibration_images(args.canvases, args.max_photos)
    stats, uncertain = statistics(model, spec, images)
    use = ~uncertain
    a, b = fit_platt(stats[use], labels[use].astype(float))
    probs = 1 / (1 + np.exp(-(a * stats + b)))
    gen_probs = np.where(uncertain, 0.0, probs)[genuine]
    shift = 0.0
    if (gen_probs >= 0.5).mean() > args.max_genuine_fpr:
        # Intercept so that the (1 - max_fpr) quantile of genuine statistics maps to 0.5.
        q = float(np.quantile(stats[genuine & use], 1.0 - args.max_genuine_fpr))
        shift = -(a * q + b) - 1e-6
        b += shift
        probs = 1 / (1 + np.exp(-(a * stats + b)))
    final = np.where(uncertain, 0.0, probs)
    spec = dataclasses.replace(spec, scorer=dataclasses.replace(spec.scorer, a=a, b=b))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    version = args.version or f"{arch}-{datetime.date.today():%Y%m%d}-{commit or 'nogit'}"
    calib = {
        "platt": {"a": a, "b": b, "prior_shift_logits": shift},
        "images": int(len(images)),
        "genuine_images": int(genuine.sum()),
        "uncertain": int(uncertain.sum()),
        "genuine_false_alarm_rate": false_alarm_rates(final[genuine]),
        "pristine_canvas_false_alarm_rate": false_alarm_rates(final[~genuine & (labels == 0)]),
        "composite_canvas_detection_rate": false_alarm_rates(final[labels == 1]),
    }
    print(calib)
    save_checkpoint(
        args.out,
        model,
        arch=arch,
        arch_kwargs=kwargs,
        model_version=version,
        consistency=spec,
        training={**training_meta, "calibration": calib, "date": f"{datetime.date.today()}", "commit": commit},
    )
    print(f"saved {args.out} ({version})")
    return args.out


if __name__ == "__main__":
    main()
