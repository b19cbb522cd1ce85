"""The shipped consistency model in one command: shards -> embedder -> calibrated checkpoint.

    python -m training.build_consistency --out training/out/consistency --export

Steps (each resumable: shards already written are kept):
1. feature shards of training canvases (training makes, BSDS train) and validation
   canvases (validation makes), training/consistency_data.py;
2. the embedder, training/train_consistency.py (best epoch by validation canvas AUC);
3. the scorer's calibration on validation makes, training/fit_scorer.py;
4. with --export, installs the checkpoint as services/synthesis/weights/default.pt.
Deterministic by --seed. On the 2-core CPU VM the steps took about 45 minutes; on a GPU
the same command trains on CUDA (the shards are CPU work either way). For DDP, run steps 1
and 3 with this command and step 2 under torchrun (docs/training.md).
"""

from __future__ import annotations

import argparse
import pathlib

from training import consistency_data, export, fit_scorer, train_consistency

DEFAULT_TRAIN_CANVASES = 10_000  # ~0.96M patches; 5,000 measured 0.02-0.03 AUC lower
DEFAULT_VAL_CANVASES = 1_000
DEFAULT_EPOCHS = 15  # validation AUC flat from ~epoch 10 (docs/training.md)


def main(argv: list[str] | None = None) -> pathlib.Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("training/out/consistency"))
    ap.add_argument("--train-canvases", type=int, default=DEFAULT_TRAIN_CANVASES)
    ap.add_argument("--val-canvases", type=int, default=DEFAULT_VAL_CANVASES)
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2, help="processes building shards")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--calibration-canvases", type=int, default=fit_scorer.CALIBRATION_CANVASES)
    ap.add_argument("--calibration-photos", type=int, default=0, help="validation photos used (0: all; tests)")
    ap.add_argument("--export", action="store_true", help="install as the default model")
    args = ap.parse_args(argv)
    shards = args.out / "shards"
    common = ["--seed", str(args.seed), "--workers", str(args.workers), "--out", str(shards)]
    consistency_data.main(["--split", "train", "--canvases", str(args.train_canvases), *common])
    consistency_data.main(["--split", "val", "--canvases", str(args.val_canvases), *common])
    embedder = train_consistency.main(
        [
            "--shards",
            str(shards),
            "--out",
            str(args.out),
            "--epochs",
            str(args.epochs),
            "--hidden",
            str(args.hidden),
            "--seed",
            str(args.seed),
            "--device",
            args.device,
        ]
    )
    model = args.out / "model.pt"
    fit_scorer.main(
        [
            "--embedder",
            str(embedder),
            "--out",
            str(model),
            "--canvases",
            str(args.calibration_canvases),
            "--max-photos",
            str(args.calibration_photos),
        ]
    )
    if args.export:
        export.export(model)
    return model


if __name__ == "__main__":
    main()
