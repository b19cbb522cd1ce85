"""The synthesis network as ONNX, and a predictor that runs it on ONNX Runtime.

What the graph holds: the network `Checkpoint.build()` returns, from the normalised model
input (N, 3, H, W) float32 to one logit per input (N,) float32, the batch axis dynamic; for
the patch archs (models.EMBEDDING_ARCHS) from (N, F) feature rows to (N, E) rows (the
output keeps the name "logits"). The consistency scorer (pairwise outliers, Platt) stays
outside, like the image scoring.
What stays outside (in services/synthesis, identical for both runtimes): decoding and EXIF
orientation, the checkpoint's preprocessing (resize, colour space incl. HLS gains,
normalisation; preprocess.prepare), tiling into global view + tiles, and scoring
(scoring.image_scores: local aggregation, global weight, calibration to a probability). A
scorer a model family runs outside its network stays outside the graph the same way.

Exported with torch.onnx's TorchScript exporter (dynamo=False): with torch 2.14.1 the
torch.export-based exporter's graph of the tiny test CNN differed from eager by 0.17 in a
logit, the TorchScript exporter's by 2e-8; export_onnx() checks parity every time.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from services.synthesis.checkpoint import Checkpoint, model_input_shapes
from services.synthesis.predictor import Predictor

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger("imagetrust.synthesis.onnx")

OPSET = 17  # ONNX opset: ONNX Runtime >= 1.14 and Triton's onnxruntime backend (22.x on) run it
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# Largest |logit| difference ONNX Runtime (CPU, float32) may show against torch eager on the
# same inputs: float32 kernels reorder sums, so exact equality is not expected; 1e-3 logits
# moves a calibrated score by at most 2.5e-4 (sigmoid slope <= 1/4).
PARITY_TOLERANCE = 1e-3
PARITY_BATCH = 3  # inputs in the parity check: not 1, so the dynamic batch axis is exercised


def input_shapes(checkpoint: Checkpoint) -> list[tuple[int, ...]]:
    """The model-input shapes serving feeds: (C, H, W) of the global view, and of tiles when
    they differ in size; (F,) feature rows for the patch archs."""
    return model_input_shapes(checkpoint)


def _parity_inputs(checkpoint: Checkpoint, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Random inputs on the scale serving feeds the model."""
    if len(shape) == 1:
        # Feature rows: around the embedder's own standardisation when it has one.
        x = torch.randn((PARITY_BATCH, *shape), generator=generator)
        state = checkpoint.state_dict
        if "feature_mean" in state and "feature_std" in state:
            x = state["feature_mean"].float() + x * state["feature_std"].float()
        return x
    # Inputs on the scale the checkpoint's normalisation produces (grey levels for the
    # forensic net, unit scale for ImageNet-normalised nets).
    scale = 1.0 / min(checkpoint.preprocessing.std)
    return torch.rand((PARITY_BATCH, *shape), generator=generator) * scale


def export_onnx(checkpoint: Checkpoint, path: str | os.PathLike, opset: int = OPSET) -> float:
    """Writes the checkpoint's network to `path` as ONNX; returns the parity measured
    (max |logit| difference, ONNX Runtime vs torch eager, on random inputs of every input
    shape). Raises ValueError when that exceeds PARITY_TOLERANCE."""
    model = checkpoint.build("cpu")
    shapes = input_shapes(checkpoint)
    dynamic = {0: "batch"}
    if len(shapes) > 1 and len(shapes[0]) == 3:  # global view and tiles differ in size: spatial axes are dynamic too
        dynamic.update({2: "height", 3: "width"})
    example = torch.zeros((PARITY_BATCH, *shapes[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: {0: "batch"}},
        )
    session = _session(path, threads=1)
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for shape in shapes:
        x = _parity_inputs(checkpoint, shape, generator)
        with torch.inference_mode():
            expected = model(x).float().numpy()
        got = session.run(None, {INPUT_NAME: x.numpy()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > PARITY_TOLERANCE:
        raise ValueError(f"ONNX export differs from torch by {worst:.3g} in a logit (> {PARITY_TOLERANCE})")
    return worst


def _session(path: str | os.PathLike, threads: int) -> ort.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class OrtPredictor:
    """Predictor's interface (services/synthesis/predictor.py) on ONNX Runtime, CPU, float32.

    The checkpoint is exported at start-up (seconds; parity checked), so the served graph
    always matches the checkpoint the server was given."""

    def __init__(self, checkpoint: Checkpoint, device: torch.device, precision: str = "auto", threads: int = 1) -> None:
        if device.type != "cpu":
            raise RuntimeError(
                "runtime onnxruntime runs on the CPU (the onnxruntime wheel has no CUDA); "
                "on GPUs use runtime=torch, or Triton with the exported model"
            )
        if precision not in ("auto", "fp32"):
            raise RuntimeError(f"runtime onnxruntime runs float32; precision {precision!r} needs runtime=torch")
        self.device = device
        self._dir = tempfile.TemporaryDirectory(prefix="imagetrust-onnx-")
        path = pathlib.Path(self._dir.name) / "model.onnx"
        parity = export_onnx(checkpoint, path)
        self.session = _session(path, threads)
        log.info("onnx runtime ready", extra={"opset": OPSET, "parity_max_abs_logit": parity, "threads": threads})

    device_name = "cpu"
    precision_name = "fp32"

    def reserve(self, max_batch_size: int) -> None:
        """Nothing to reserve: ONNX Runtime allocates per run from its arena."""

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """(N,) float32 logits for N same-shaped (C, H, W) inputs; (N, E) rows for (F,) ones."""
        x = torch.stack(inputs).numpy()
        return torch.from_numpy(self.session.run(None, {INPUT_NAME: x})[0])

    def warm_up(self, shapes: Sequence[tuple[int, ...]], batch_sizes: list[int], iterations: int) -> None:
        for shape in shapes:
            for n in sorted(set(batch_sizes)):
                for _ in range(max(1, iterations)):
                    out = self.forward([torch.zeros(shape)] * n)
                    if out.dim() not in (1, 2) or out.shape[0] != n or not torch.isfinite(out).all():
                        raise RuntimeError(f"warm-up forward on {n}x{shape} gave {tuple(out.shape)} / non-finite")


def resolve_runtime(runtime: str, device: torch.device, precision: str) -> str:
    """The runtime `auto` means here: onnxruntime on a CPU at float32, else torch."""
    if runtime != "auto":
        return runtime
    return "onnxruntime" if device.type == "cpu" and precision in ("auto", "fp32") else "torch"


def make_predictor(
    checkpoint: Checkpoint, device: torch.device, precision: str, runtime: str, threads: int
) -> Predictor | OrtPredictor:
    """The predictor for the runtime setting (SynthesisConfig.runtime). With `auto`, a
    network the exporter cannot carry, or that misses parity, runs on torch instead."""
    chosen = resolve_runtime(runtime, device, precision)
    if chosen == "torch":
        return Predictor(checkpoint, device, precision)
    try:
        return OrtPredictor(checkpoint, device, precision, threads)
    except Exception as exc:
        if runtime != "auto":
            raise
        log.warning("onnx export failed, serving with torch: %s", exc, extra={"error": type(exc).__name__})
        return Predictor(checkpoint, device, precision)
