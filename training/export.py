"""Ships a trained checkpoint as the service's default model, after checking it.

    python -m training.export training/out/ours/model.pt   # -> services/synthesis/weights/default.pt

Checks before copying: the synthesis checkpoint loader reads it, it is not a placeholder,
its weights build the declared arch, a forward pass through the serving preprocessing gives
finite scores, and the file is at most MAX_BYTES (it is committed to git and packaged).
Consistency checkpoints also: the probe is scored (not `uncertain`) through the patch path,
and the network exports to ONNX within the parity tolerance (ONNX Runtime serves CPUs by
default; a model that failed it would be served by torch).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import tempfile

import numpy as np

from services.synthesis import DEFAULT_MODEL_PATH
from services.synthesis.checkpoint import CheckpointError, load_checkpoint
from services.synthesis.onnx_runtime import export_onnx
from training import serving_path

MAX_BYTES = 20 * 1024 * 1024  # bytes: the repository's limit for the shipped model
_PROBE_SIZE = (321, 481)  # px (h, w): a BSDS-sized probe image for the smoke forward pass


def check(path: pathlib.Path) -> str:
    """Raises CheckpointError with the reason when path cannot be shipped; returns its version."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise CheckpointError(f"{path}: {size} bytes, over the {MAX_BYTES}-byte limit for the shipped model")
    ckpt = load_checkpoint(path)
    if ckpt.placeholder:
        raise CheckpointError(f"{path}: a placeholder (untrained) checkpoint cannot be the default model")
    probe = np.random.default_rng(0).integers(0, 256, (*_PROBE_SIZE, 3), dtype=np.uint8)
    scores = serving_path.score(ckpt, [probe])
    if not np.isfinite(scores).all() or not (0.0 <= scores[0] <= 1.0):
        raise CheckpointError(f"{path}: smoke forward pass gave {scores}")
    if ckpt.consistency is not None:
        # Noise is trace everywhere: every patch is valid, so the probe must be judged.
        result = serving_path.consistency_scores(ckpt, [probe])[0]
        if result.uncertain or not np.isfinite(result.statistic):
            raise CheckpointError(f"{path}: the probe came out {result} through the patch path")
        with tempfile.TemporaryDirectory(prefix="imagetrust-export-") as tmp:
            try:
                export_onnx(ckpt, pathlib.Path(tmp) / "model.onnx")
            except Exception as exc:  # the exporter's own errors and the parity ValueError
                raise CheckpointError(f"{path}: ONNX export failed: {exc}") from exc
    return ckpt.model_version


def export(src: pathlib.Path, dst: pathlib.Path = DEFAULT_MODEL_PATH) -> pathlib.Path:
    version = check(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o644)  # checkpoints are written 0600 (mkstemp); the packaged file is world-readable
    os.replace(tmp, dst)
    print(f"[export] {src} -> {dst} ({dst.stat().st_size} bytes, {version})", flush=True)
    return dst


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Ship a trained checkpoint as the default synthesis model")
    p.add_argument("checkpoint", type=pathlib.Path)
    p.add_argument("--to", type=pathlib.Path, default=DEFAULT_MODEL_PATH, help="destination (default: the service's)")
    args = p.parse_args(argv)
    try:
        export(args.checkpoint, args.to)
    except (CheckpointError, OSError) as exc:  # check() states the reason; nothing was installed
        # The first line: torch's unpickling errors append a paragraph of advice.
        raise SystemExit(f"[export] not exported: {str(exc).splitlines()[0]}") from None


if __name__ == "__main__":
    main()
