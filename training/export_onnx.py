"""Exports a synthesis checkpoint's network to ONNX, with its serving contract beside it.

    python -m training.export_onnx CKPT OUT_DIR [--opset 17] [--triton] [--triton-name NAME]

Writes:
    OUT_DIR/model.onnx      the network: input "input" (N, 3, H, W) float32, normalised as
                            the contract says; output "logits" (N,) float32; N dynamic.
                            Consistency checkpoints: input (N, F) patch feature rows,
                            output (N, E) rows; the contract says how rows are made/scored
    OUT_DIR/contract.json   what runs outside the graph, with the checkpoint's own specs:
                            decoding, preprocessing, tiling, scoring and calibration; the
                            parity measured at export (ONNX Runtime vs torch eager)
    OUT_DIR/triton/NAME/config.pbtxt and 1/model.onnx   with --triton: a Triton model
                            repository entry (onnxruntime backend, dynamic batching)

The export refuses (exit 1) when ONNX Runtime's logits differ from torch's by more than
services.synthesis.onnx_runtime.PARITY_TOLERANCE on the same inputs.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
from typing import Any

import torch

from services.synthesis.checkpoint import CheckpointError, load_checkpoint
from services.synthesis.onnx_runtime import (
    INPUT_NAME,
    OPSET,
    OUTPUT_NAME,
    PARITY_TOLERANCE,
    export_onnx,
    input_shapes,
)
from services.synthesis.preprocess import spec_to_dict

CONTRACT_FORMAT = "imagetrust.synthesis.onnx-contract"
CONTRACT_VERSION = 1
TRITON_NAME = "synthesis_detector"
# Triton's batching: 64 model inputs per pass as the synthesis service's max_batch_size;
# 5 ms queue delay as its max_queue_delay_ms (docs/synthesis.md).
TRITON_MAX_BATCH = 64
TRITON_PREFERRED_BATCHES = (16, 64)
TRITON_QUEUE_DELAY_US = 5_000

OUTSIDE_THE_GRAPH = [
    (
        "decode the upload as sent (JPEG, PNG, WebP, TIFF, HEIC/HEIF) to 8-bit RGB and apply the EXIF orientation "
        "(services/common/imaging.py decode_rgb)"
    ),
    (
        "preprocessing per `preprocessing`: resize the whole image to input_size x input_size for the global view, "
        "colour space (incl. HLS lightness/saturation gains), then (x / 255 - mean) / std per channel "
        "(services/synthesis/preprocess.py prepare)"
    ),
    (
        "tiling per `tiling`: native-resolution tiles of tile_size at stride, at most max_tiles, normalised the "
        "same way; the global view and every tile are one model input each, batched along N"
    ),
    (
        "scoring per `tiling` and `calibration`: sigmoid of each logit; the local score aggregates the tiles "
        "(local_aggregate, top_k), the score combines global and local (global_weight), then calibration "
        "(none / temperature / Platt a, b) maps it to the probability served (services/synthesis/scoring.py image_scores)"
    ),
]


OUTSIDE_THE_GRAPH_CONSISTENCY = [
    OUTSIDE_THE_GRAPH[0],
    (
        "patches per `consistency.sampling`: native-resolution squares of `patch` px on a centred grid aligned to "
        "the 8x8 JPEG grid (stride >= min_stride, at most max_patches); flat or clipped patches are invalid; fewer "
        "than min_valid_patches valid: uncertain, no model call (services/synthesis/consistency.py prepare_patches)"
    ),
    (
        "features per `consistency.features` and `context` (services/synthesis/traces.py): one float32 row per "
        "valid patch, one model input each, batched along N"
    ),
    (
        "scoring per `consistency.scorer`: per-patch outlier scores from the output rows (embedding: pairwise "
        "P(different); gaussian_outlier: Splicebuster's EM), the top-fraction statistic, then Platt a, b "
        "(services/synthesis/consistency.py score_patches)"
    ),
]


def _output_width(ckpt: Any) -> int:
    """E of the (N, E) rows a patch arch returns."""
    (shape,) = input_shapes(ckpt)
    with torch.inference_mode():
        return int(ckpt.build("cpu")(torch.zeros((1, *shape))).shape[1])


def _contract(
    ckpt: Any, opset: int, parity: float, input_shape: list, output: dict, against: str, **parts: Any
) -> dict[str, Any]:
    """The contract's common skeleton; `parts` are the model kind's own keys."""
    return {
        "format": CONTRACT_FORMAT,
        "format_version": CONTRACT_VERSION,
        "model_version": ckpt.model_version,
        "arch": ckpt.arch,
        "placeholder": ckpt.placeholder,
        "onnx": {
            "file": "model.onnx",
            "opset": opset,
            "exporter": f"torch.onnx TorchScript exporter (dynamo=False), torch {torch.__version__}",
            "inputs": [{"name": INPUT_NAME, "dtype": "float32", "shape": input_shape}],
            "outputs": [{"name": OUTPUT_NAME, "dtype": "float32", **output}],
            "input_shapes_served": [list(s) for s in input_shapes(ckpt)],
        },
        **parts,
        "parity": {"max_abs_logit_diff": parity, "tolerance": PARITY_TOLERANCE, "against": against},
    }


def contract(ckpt: Any, opset: int, parity: float) -> dict[str, Any]:
    if ckpt.consistency is not None:
        (shape,) = input_shapes(ckpt)
        return _contract(
            ckpt,
            opset,
            parity,
            ["batch", *shape],
            {
                "shape": ["batch", _output_width(ckpt)],
                "meaning": "one row per patch feature row: a unit embedding (consistency) or the features "
                "themselves (splicebuster); the scorer compares rows of one image",
            },
            "torch eager float32 on CPU, random feature rows around the model's standardisation, batch 3",
            consistency=ckpt.consistency.to_dict(),
            outside_the_graph=OUTSIDE_THE_GRAPH_CONSISTENCY,
        )
    shapes = input_shapes(ckpt)
    spatial: list[int | str] = list(shapes[0][1:]) if len(shapes) == 1 else ["height", "width"]
    return _contract(
        ckpt,
        opset,
        parity,
        ["batch", 3, *spatial],
        {"shape": ["batch"], "meaning": "one logit per model input; sigmoid gives that input's score"},
        "torch eager float32 on CPU, random inputs of every served shape, batch 3",
        preprocessing=spec_to_dict(ckpt.preprocessing),
        tiling=spec_to_dict(ckpt.tiling),
        calibration=spec_to_dict(ckpt.calibration),
        outside_the_graph=OUTSIDE_THE_GRAPH,
    )


def triton_config(name: str, ckpt: Any) -> str:
    if ckpt.consistency is not None:
        (shape,) = input_shapes(ckpt)
        return _triton_text(name, ckpt, str(shape[0]), f"dims: [ {_output_width(ckpt)} ]")
    shapes = input_shapes(ckpt)
    dims = ", ".join(str(d) for d in shapes[0]) if len(shapes) == 1 else "3, -1, -1"
    return _triton_text(name, ckpt, dims, "dims: [ 1 ]\n    reshape: { shape: [ ] }")


def _triton_text(name: str, ckpt: Any, dims: str, output_dims: str) -> str:
    what = (
        "patch feature rows; output: one row per input"
        if ckpt.consistency
        else "normalised model inputs (global view and tiles); output: one logit per input"
    )
    preferred = ", ".join(str(b) for b in TRITON_PREFERRED_BATCHES)
    return f'''# Triton model repository entry for {ckpt.model_version} (training/export_onnx.py).
# Input: {what}.
# Decoding, preprocessing, tiling or patches, and scoring run outside (contract.json).
name: "{name}"
backend: "onnxruntime"
max_batch_size: {TRITON_MAX_BATCH}
input [
  {{
    name: "{INPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {dims} ]
  }}
]
output [
  {{
    name: "{OUTPUT_NAME}"
    data_type: TYPE_FP32
    {output_dims}
  }}
]
dynamic_batching {{
  preferred_batch_size: [ {preferred} ]
  max_queue_delay_microseconds: {TRITON_QUEUE_DELAY_US}
}}
'''


def export(
    checkpoint_path: pathlib.Path,
    out_dir: pathlib.Path,
    opset: int = OPSET,
    triton: bool = False,
    triton_name: str = TRITON_NAME,
) -> dict[str, Any]:
    ckpt = load_checkpoint(checkpoint_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "model.onnx"
    parity = export_onnx(ckpt, model_path, opset)
    written = contract(ckpt, opset, parity)
    (out_dir / "contract.json").write_text(json.dumps(written, indent=2) + "\n")
    if triton:
        entry = out_dir / "triton" / triton_name
        (entry / "1").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_path, entry / "1" / "model.onnx")
        (entry / "config.pbtxt").write_text(triton_config(triton_name, ckpt))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=pathlib.Path)
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument("--triton", action="store_true", help="also write a Triton model repository entry")
    parser.add_argument("--triton-name", default=TRITON_NAME, help=f"Triton model name (default {TRITON_NAME})")
    args = parser.parse_args(argv)
    try:
        written = export(args.checkpoint, args.out_dir, args.opset, args.triton, args.triton_name)
    except (CheckpointError, ValueError, FileNotFoundError) as exc:
        print(f"export_onnx: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.out_dir / 'model.onnx'}: opset {written['onnx']['opset']}, "
        f"parity {written['parity']['max_abs_logit_diff']:.2e} (tolerance {PARITY_TOLERANCE})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
