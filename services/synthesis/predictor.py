"""A checkpoint's model on a device: one forward pass over a batch of model inputs.

CUDA: inputs are stacked into a pinned host buffer (one per input shape, reused) and
copied with non_blocking=True, the model runs channels_last under autocast (bfloat16
where the GPU supports it, else float16), and logits come back as float32.
CPU: float32 NCHW by default, torch's intra-op threads set once for the process. With
precision=bf16 (opt-in: it moves scores slightly), bfloat16 autocast and channels_last on
CPUs whose oneDNN has native bf16 (AVX512-BF16 / AMX). Whether it pays depends on the
model: bench/bench_forward.py measures it (figures in docs/benchmarks.md, "bench_forward":
a large gain for ResNet-50 at 224, none for the shipped forensic net, whose float32 front
end dominates).
Patch archs (models.EMBEDDING_ARCHS) take (F,) feature rows and return (N, E) rows;
channels_last applies to 4-D image batches only.
"""

from __future__ import annotations

import logging
import os

import torch

from services.synthesis.checkpoint import Checkpoint

log = logging.getLogger("imagetrust.synthesis.predictor")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available (set device=cpu or auto)")
    return device


def cpu_bf16_supported() -> bool:
    """oneDNN runs bf16 natively here (without it, autocast would emulate and be slower)."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, None for float32."""
    if device.type == "cpu":
        # CPU stays float32 unless bf16 is asked for: "auto" must not move scores on the
        # machines the model was calibrated on.
        if name == "fp16":
            raise RuntimeError("precision fp16 is CUDA-only; on CPU use fp32 or bf16")
        if name == "bf16" and not cpu_bf16_supported():
            raise RuntimeError(
                "precision bf16 on CPU needs native bf16 (AVX512-BF16 or AMX) in oneDNN, which this CPU lacks; use fp32"
            )
        return torch.bfloat16 if name == "bf16" else None
    if device.type != "cuda" or name == "fp32":
        return None
    if name == "bf16" or (name == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def configure_cpu_threads(requested: int) -> int:
    """Sets torch's intra-op threads: requested, or every core this process may use."""
    n = requested if requested > 0 else len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


class Predictor:
    def __init__(self, checkpoint: Checkpoint, device: torch.device, precision: str = "auto") -> None:
        self.device = device
        self.amp_dtype = resolve_precision(precision, device)
        model = checkpoint.build(device)
        # channels_last: cuDNN's tensor-core kernels and oneDNN's bf16 kernels both want NHWC.
        self.channels_last = device.type == "cuda" or self.amp_dtype is not None
        if self.channels_last and not checkpoint.consistency:
            model = model.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: autotune once in warm-up
        self.model = model
        self._pinned: dict[tuple[int, ...], torch.Tensor] = {}
        self._capacity = 0

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            return f"cuda:{index}"
        return str(self.device)

    @property
    def precision_name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def reserve(self, max_batch_size: int) -> None:
        """Pinned buffers hold up to this many inputs per shape (CUDA only)."""
        self._capacity = max_batch_size

    def _stack(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if self.device.type != "cuda":
            return torch.stack(inputs)
        shape = tuple(inputs[0].shape)
        buf = self._pinned.get(shape)
        if buf is None or buf.shape[0] < len(inputs):
            buf = torch.empty((max(self._capacity, len(inputs)), *shape), pin_memory=True)
            self._pinned[shape] = buf
        # Safe to reuse: forward() returns only after the device finished with the copy
        # (the .cpu() of the logits synchronises).
        return torch.stack(inputs, out=buf[: len(inputs)])

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """(N,) float32 logits on the CPU for N same-shaped (C, H, W) inputs; (N, E) float32
        rows for N (F,) feature rows."""
        with torch.inference_mode():
            x = self._stack(inputs)
            image = x.dim() == 4  # channels_last exists for NCHW batches only
            if self.device.type == "cuda":
                x = x.to(self.device, non_blocking=True)
                if image:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                    out = self.model(x)
                return out.float().cpu()
            if self.amp_dtype is not None and image:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp_dtype is not None):
                return self.model(x).float()

    def warm_up(self, shapes: list[tuple[int, ...]], batch_sizes: list[int], iterations: int) -> None:
        """Runs the model on zeros for each input shape and batch size, so the first real
        request does not pay for allocation, kernel selection or lazy initialisation."""
        for shape in shapes:
            for n in sorted(set(batch_sizes)):
                for _ in range(max(1, iterations)):
                    out = self.forward([torch.zeros(shape)] * n)
                    if out.dim() not in (1, 2) or out.shape[0] != n or not torch.isfinite(out).all():
                        raise RuntimeError(f"warm-up forward on {n}x{shape} gave {tuple(out.shape)} / non-finite")
