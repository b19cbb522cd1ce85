"""Verification tuning from cached fingerprints: stage-1 candidates found once, verification
re-run in seconds after each change to verify.py / descriptor.py.

`build` fingerprints a corpus through the production path (fingerprints.compute) and keeps,
per registered image, its working image (so records can be re-encoded, e.g. with fewer
keypoints) and record; per query, its working image and its stage-1 candidates (brute force:
within bands.THRESHOLD on some probed variant x view, no index losses, so a superset of what
the banded index proposes).

Two corpora, kept apart:
- `tune`: images the evaluation never registers (the odd half of BSDS500/exif-samples that
  bench_reuse_accuracy only queries, products on white made from them, camera-photo windows
  straddling the evaluation's quadrants), copies made with bench/reuse_thefts.TUNING,
  distinct queries from the other images (views, products on white, bursts), its own seed.
  Thresholds are chosen on this one.
- `eval`: bench_reuse_accuracy's corpus and distinct queries (same seed, so the same
  images), to look at its false accusations one by one (`dump`), never to choose thresholds.

    .venv/bin/python -m bench.reuse_verify_cache build --set tune [--quick]
    .venv/bin/python -m bench.reuse_verify_cache eval --set tune [--version 2]
    .venv/bin/python -m bench.reuse_verify_cache dump --set eval --out /tmp/false-pairs
"""

from __future__ import annotations

import argparse
import pathlib
import pickle
import random
import sys
import time
from collections import Counter
from typing import Any

import cv2
import numpy as np
from PIL import Image

from bench import bench_reuse_accuracy as acc
from bench import reuse_thefts
from services.metadata.registry import bands
from services.metadata.reuse import descriptor, verify, views

CACHE = pathlib.Path("/tmp/reuse-verify-cache")
TUNE_SEED = 61
QUADRANTS = acc.QUADRANTS


def _windows_straddling(rng: random.Random) -> list[tuple[float, float, float, float]]:
    """Two windows of a camera photo that overlap every evaluation quadrant by <= 50 %."""
    out = [(0.27, 0.27, 0.73, 0.73)]
    while len(out) < 2:
        s = rng.uniform(0.4, 0.55)
        x, y = rng.uniform(0, 1 - s), rng.uniform(0, 1 - s)
        box = (x, y, x + s, y + s * rng.uniform(0.7, 1.0))
        if box[3] <= 1 and max(acc.overlap(q, box) for q in QUADRANTS) <= 0.5 and acc.overlap(out[0], box) <= 0.5:
            out.append(box)
    return out


def tune_corpus(quick: bool) -> tuple[list[tuple[str, bytes, str]], list[tuple[str, bytes, int]]]:
    """(registered: name, bytes, group), (queries: kind, bytes, expected registered index or -1)."""
    rng = random.Random(TUNE_SEED)
    camera = sorted((acc.DATASETS / "camera-photos").glob("*.jpg"))
    bsds = sorted((acc.DATASETS / "bsds500").glob("*/images/*.jpg"))
    exif = sorted(
        p
        for p in (acc.DATASETS / "exif-samples" / "jpg").rglob("*.jpg")
        if "invalid" not in p.parts and not ("orientation" in p.parts and not p.stem.endswith("_1"))
    )
    if quick:
        camera, bsds, exif = camera[::3], bsds[::3], exif[::2]
    registered: list[tuple[str, bytes, str]] = []
    others: list[Image.Image] = []
    for i, path in enumerate(bsds + exif):
        try:
            img = acc.load(path, acc.SOURCE_EDGE)
        except Exception:  # noqa: BLE001 - a few exif samples are deliberately broken
            continue
        if min(img.size) < 64:
            continue
        if i % 2 == 1:  # the half the evaluation never registers
            registered.append((path.name, acc.jpeg(img), "photo"))
            if i % 6 == 1:
                registered.append((f"product-{path.name}", acc.jpeg(acc.product_on_white(img, rng)), "product"))
        else:
            others.append(img)
    camera_imgs = []
    for path in camera:
        img = acc.load(path, acc.SOURCE_EDGE)
        camera_imgs.append(img)
        for k, box in enumerate(_windows_straddling(rng)):
            registered.append((f"{path.name}#w{k}", acc.jpeg(acc.cut(img, box)), "camera view"))
    queries: list[tuple[str, bytes, int]] = []
    recipes = dict(reuse_thefts.TUNING)
    recipes["crop_side"] = tune_crop_side
    for idx, (_name, data, _group) in enumerate(registered):
        original = acc.load_bytes(data)
        for name, recipe in recipes.items():
            queries.append((f"theft {name}", acc.jpeg(recipe(original, rng), rng.choice((70, 90))), idx))
    per_source = 4 if quick else 10
    for img in others:
        for _ in range(per_source):
            s = rng.uniform(0.5, 1.0)
            x, y = rng.uniform(0, 1 - s), rng.uniform(0, 1 - s)
            queries.append(("unregistered photo", acc.jpeg(acc.cut(img, (x, y, x + s, y + s))), -1))
        for _ in range(per_source):
            queries.append(("product on white", acc.jpeg(acc.product_on_white(img, rng)), -1))
    for img in camera_imgs:
        for box in QUADRANTS:  # never registered here; overlap the straddling windows by ~25 %
            queries.append(("same photo, other view", acc.jpeg(acc.cut(img, box)), -1))
        shot, _ = acc.burst(img, (0.27, 0.27, 0.73, 0.73), rng)
        queries.append(("burst-like shot", acc.jpeg(shot), -1))
    return registered, queries


def tune_crop_side(img: Image.Image, rng: random.Random) -> Image.Image:
    """Tuning's off-centre crop: 10 % of each dimension off one side (which side at random)."""
    dx, dy = round(img.width * 0.1), round(img.height * 0.1)
    left = dx if rng.random() < 0.5 else 0
    top = dy if rng.random() < 0.5 else 0
    return reuse_thefts._scale(img.crop((left, top, img.width - (dx - left), img.height - (dy - top))), 0.85)


def eval_corpus(quick: bool) -> tuple[list[tuple[str, bytes, str]], list[tuple[str, bytes, int]]]:
    corpus = acc.Corpus(quick, random.Random(acc.SEED))
    return corpus.registered, [(group, data, -1) for group, data in corpus.distinct]


def _gray(fp: Any) -> tuple[np.ndarray, int] | None:
    c = fp.content
    if c is None or c.probe is None:
        return None
    return c.probe.gray, c.probe.border_sides


def build(which: str, quick: bool) -> None:
    t0 = time.perf_counter()
    registered, queries = (tune_corpus if which == "tune" else eval_corpus)(quick)
    print(f"{which}: {len(registered)} registered, {len(queries)} queries, built in {time.perf_counter() - t0:.0f} s")
    reg: list[dict[str, Any]] = []
    indexed: list[tuple[int, int]] = []  # (owner, hash as int)
    for i, (name, data, group) in enumerate(registered):
        fp = acc.fp_of(data)
        g = _gray(fp)
        reg.append({"name": name, "group": group, "record": fp.content.record if fp.content else b"", "gray": g})
        if fp.content is not None:
            indexed += [(i, int.from_bytes(h, "big")) for _ns, h in fp.content.views]
    owner = np.array([o for o, _ in indexed])
    stored = np.array([h for _, h in indexed], np.uint64)
    out: list[dict[str, Any]] = []
    for kind, data, expected in queries:
        fp = acc.fp_of(data)
        c = fp.content
        cands: list[int] = []
        flipped: list[int] = []
        if c is not None and c.variants and len(stored):
            q = np.array([int.from_bytes(h, "big") for h, _ in c.variants], np.uint64)
            close = np.bitwise_count(q[:, None] ^ stored[None]) <= bands.THRESHOLD
            cands = sorted(set(owner[close.any(axis=0)].tolist()))
            mirrored = [i for i in views.MIRRORED_VARIANTS if i < len(q)]
            flipped = sorted(set(owner[close[mirrored].any(axis=0)].tolist()))
        out.append(
            {
                "kind": kind,
                "expected": expected,
                "candidates": cands,
                "mirrored": flipped,
                "gray": _gray(fp) if cands else None,
            }
        )
    CACHE.mkdir(exist_ok=True)
    with open(CACHE / f"{which}.pkl", "wb") as f:
        pickle.dump({"registered": reg, "queries": out}, f)
    print(f"cached in {time.perf_counter() - t0:.0f} s")


def load(which: str) -> dict[str, Any]:
    with open(CACHE / f"{which}.pkl", "rb") as f:
        return pickle.load(f)


def records(data: dict[str, Any], keypoints: int | None) -> list[descriptor.Stored | None]:
    """Decoded records, as cached, or re-encoded in record version `keypoints`."""
    out: list[descriptor.Stored | None] = []
    for r in data["registered"]:
        if keypoints is None or r["gray"] is None:
            out.append(descriptor.decode(r["record"]))
            continue
        gray, _sides = r["gray"]
        f = descriptor.extract(gray)
        record = descriptor.encode(f, descriptor.stable(gray, f), descriptor.textured(gray, f), keypoints)
        out.append(descriptor.decode(record))
    return out


def run(
    data: dict[str, Any], keypoints: int | None, mirror_all: bool = False
) -> list[tuple[int, int, verify.Verification]]:
    """Verifies every query against its candidates; prints recall and false accusations.
    Returns the false (query, registered, verification) triples."""
    stored = records(data, keypoints)
    recall: Counter[str] = Counter()
    total: Counter[str] = Counter()
    false: Counter[str] = Counter()
    false_pairs = []
    for qi, q in enumerate(data["queries"]):
        total[q["kind"]] += 1
        cands = [c for c in q["candidates"] if stored[c] is not None]
        if not cands or q["gray"] is None:
            continue
        gray, sides = q["gray"]
        probe = descriptor.Probe(gray, descriptor.extract(gray), sides)
        flags = [c in q["mirrored"] for c in cands] if mirror_all is False else None
        results = verify.verify_all([stored[c] for c in cands], probe, flags)
        for c, v in zip(cands, results):
            if not v.matched:
                continue
            if c == q["expected"]:
                recall[q["kind"]] += 1
            elif q["expected"] < 0:
                false[q["kind"]] += 1
                false_pairs.append((qi, c, v))
    for kind in sorted(total):
        if kind.startswith("theft"):
            print(f"  {kind:28s} recall {recall[kind] / total[kind]:.3f} ({recall[kind]}/{total[kind]})")
    print(
        f"  false REUSED among {sum(n for k, n in total.items() if not k.startswith('theft'))} distinct queries: "
        f"{sum(false.values())} {dict(false)}"
    )
    return false_pairs


def dump(data: dict[str, Any], pairs: list[tuple[int, int, verify.Verification]], out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for n, (qi, ri, v) in enumerate(pairs):
        q, r = data["queries"][qi], data["registered"][ri]
        rgray = r["gray"][0] if r["gray"] is not None else np.zeros((10, 10), np.uint8)
        qgray = q["gray"][0]
        stored = descriptor.decode(r["record"])
        left = cv2.cvtColor(rgray, cv2.COLOR_GRAY2BGR)
        right = cv2.cvtColor(qgray, cv2.COLOR_GRAY2BGR)
        if v.kinds and "mirrored" in v.kinds:
            right = right[:, ::-1].copy()
        for x, y in stored.points * descriptor.WORK_EDGE:  # type: ignore[union-attr]
            cv2.circle(left, (round(float(x)), round(float(y))), 4, (0, 0, 255), 1)
        h = max(left.shape[0], right.shape[0])
        canvas = np.full((h + 30, left.shape[1] + right.shape[1] + 10, 3), 255, np.uint8)
        canvas[: left.shape[0], : left.shape[1]] = left
        canvas[: right.shape[0], left.shape[1] + 10 :] = right
        text = f"{r['group']} {r['name'][:30]} | {q['kind']} | in {v.inliers} sc {v.score} k {v.kept} i {v.inside} {v.kinds}"
        cv2.putText(canvas, text, (4, h + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.imwrite(str(out / f"{n:02d}.png"), canvas)
        print(f"{n:02d}: q{qi} r{ri} {text}")


def pair_features(stored: descriptor.Stored, probe: descriptor.Probe, mirrored: bool) -> dict[str, float]:
    """Diagnostics of one verified pair: the inliers' descriptor distances and spread."""
    query = probe.mirrored if mirrored else probe.features
    rows, cols = verify._candidate_matches([stored], query)[0]
    src = (stored.points[rows] * descriptor.WORK_EDGE).astype(np.float32)
    dst = query.points[cols].astype(np.float32)
    matrix, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=verify.REPROJECTION_PX, maxIters=500, confidence=0.995
    )
    if matrix is None:
        return {}
    inl = mask.ravel().astype(bool)
    d = np.bitwise_count(stored.descriptors[rows[inl]] ^ query.descriptors[cols[inl]]).sum(axis=1)
    hull = cv2.convexHull(src[inl]) if inl.sum() >= 3 else None
    w, h = stored.aspect[0] * descriptor.WORK_EDGE, stored.aspect[1] * descriptor.WORK_EDGE
    return {
        "n": float(inl.sum()),
        "dmed": float(np.median(d)),
        "dmean": float(d.mean()),
        "d30": float((d <= 30).mean()),
        "hull": float(cv2.contourArea(hull) / (w * h)) if hull is not None else 0.0,
        "scale": float(np.hypot(matrix[0, 0], matrix[1, 0])),
        "thin": float(np.sqrt(np.linalg.eigvalsh(np.cov(stored.points[rows[inl]].T))[0])),
        "kp": float(len(stored.points)),
        "places": float(verify._places(src[inl])),
    }


def analyse(data: dict[str, Any], version: int | None) -> None:
    stored = records(data, version)
    rows: list[tuple[str, dict[str, float], verify.Verification]] = []
    for q in data["queries"]:
        cands = [c for c in q["candidates"] if stored[c] is not None]
        if not cands or q["gray"] is None:
            continue
        gray, sides = q["gray"]
        probe = descriptor.Probe(gray, descriptor.extract(gray), sides)
        flags = [c in q["mirrored"] for c in cands]
        for c, v in zip(cands, verify.verify_all([stored[c] for c in cands], probe, flags)):
            if v.matched and (c == q["expected"] or q["expected"] < 0):
                label = "TRUE " + q["kind"] if c == q["expected"] else "FALSE " + q["kind"]
                rows.append((label, pair_features(stored[c], probe, "mirrored" in v.kinds), v))
    for label, f, v in sorted(rows, key=lambda r: r[0]):
        if label.startswith("FALSE"):
            print(label, {k: round(x, 2) for k, x in f.items()}, v.inliers, v.score, v.kept, v.inside, v.kinds)
    for key, limits in (("thin", (0.01, 0.015, 0.02, 0.03, 0.04)), ("places", (4, 5, 6, 7, 8))):
        for t in limits:
            print(
                f"{key} < {t}: "
                + ", ".join(
                    f"{p} {sum(1 for label, f, _ in rows if label.startswith(p) and f and f[key] < t)}"
                    for p in ("TRUE", "FALSE")
                )
            )
    for prefix in ("TRUE", "FALSE"):
        fs = [f for label, f, _ in rows if label.startswith(prefix) and f]
        for key in ("n", "dmed", "dmean", "d30", "hull", "thin", "kp", "places"):
            vals = np.array([f[key] for f in fs])
            if len(vals):
                print(prefix, key, "p5/p50/p95", np.percentile(vals, [5, 50, 95]).round(2), len(vals))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "eval", "dump", "analyse"))
    parser.add_argument("--set", dest="which", choices=("tune", "eval"), default="tune")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--version", type=int, default=None, help="re-encode the records in this record version")
    parser.add_argument("--mirror-all", action="store_true", help="every candidate against the mirror image too")
    parser.add_argument("--param", action="append", default=[], help="verify.NAME=VALUE, for a sweep")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("/tmp/false-pairs"))
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.which, args.quick)
        return 0
    for assignment in args.param:
        name, value = assignment.split("=")
        setattr(verify, name, float(value) if "." in value else int(value))
    data = load(args.which)
    if args.command == "analyse":
        analyse(data, args.version)
        return 0
    t0 = time.perf_counter()
    pairs = run(data, args.version, args.mirror_all)
    print(f"verified in {time.perf_counter() - t0:.0f} s")
    if args.command == "dump":
        dump(data, pairs, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
