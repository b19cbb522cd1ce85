"""PDQ (Meta's reference implementation, the `pdqhash` bindings) against pHash 64 as the
retrieval hash, on thieves' edits: the distance of each copy to its original, and the recall
at PDQ's usual thresholds (31 and 70 of 256 bits) and pHash's 12 of 64. Mirrored copies are
given PDQ's best dihedral variant. 60 BSDS500 photos, bench/reuse_thefts.EVALUATION.

    .venv/bin/python -m bench.bench_reuse_pdq
"""

from __future__ import annotations

import argparse
import io
import pathlib
import random

import numpy as np
import pdqhash  # type: ignore[import-untyped]
from PIL import Image

from bench import reuse_thefts
from services.metadata import fingerprints as F

DATASETS = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def pdq(img: Image.Image) -> tuple[np.ndarray, int]:
    h, q = pdqhash.compute(np.asarray(img.convert("RGB")))
    return np.packbits(h.astype(np.uint8)), q


def ph(img: Image.Image) -> np.ndarray:
    return np.frombuffer(F.phash64(np.asarray(img.convert("RGB"))), np.uint8)


def ham(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(a ^ b).sum())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the same 60 photos (it takes seconds)")
    parser.parse_args(argv)
    fs = sorted((DATASETS / "bsds500" / "train" / "images").glob("*.jpg"))[::3][:60]
    rng = random.Random(3)
    orig = [Image.open(f).convert("RGB") for f in fs]

    pdqs = [pdq(o)[0] for o in orig]
    phs = [ph(o) for o in orig]
    dist_pdq = [ham(pdqs[i], pdqs[j]) for i in range(len(pdqs)) for j in range(i)]
    dist_ph = [ham(phs[i], phs[j]) for i in range(len(phs)) for j in range(i)]
    print(
        f"{len(dist_pdq)} distinct pairs: pdq min {min(dist_pdq)} p0.1 {np.percentile(dist_pdq, 0.1):.0f}; "
        f"phash min {min(dist_ph)} p0.1 {np.percentile(dist_ph, 0.1):.0f}"
    )
    for name in ("scale_reencode", "crop", "mirror", "border", "overlay"):
        dp, dh = [], []
        for o, p, h in zip(orig, pdqs, phs):
            out = io.BytesIO()
            reuse_thefts.EVALUATION[name](o, rng).save(out, "JPEG", quality=80)
            copy = Image.open(io.BytesIO(out.getvalue())).convert("RGB")
            if name == "mirror":  # PDQ's dihedral variants: the best of the eight
                variants, _quality = pdqhash.compute_dihedral(np.asarray(copy))
                dp.append(min(ham(p, np.packbits(x.astype(np.uint8))) for x in variants))
            else:
                dp.append(ham(p, pdq(copy)[0]))
            dh.append(ham(h, ph(copy)))
        a_dp, a_dh = np.array(dp), np.array(dh)
        print(
            f"{name:15s} pdq median {np.median(a_dp):5.0f} recall@31 {np.mean(a_dp <= 31):.2f} "
            f"@70 {np.mean(a_dp <= 70):.2f} | phash median {np.median(a_dh):4.0f} recall@12 {np.mean(a_dh <= 12):.2f}"
        )


if __name__ == "__main__":
    main()
