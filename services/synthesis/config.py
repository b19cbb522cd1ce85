"""The synthesis service's settings: server-wide ones (services/common/config.py) plus its
own (model, device, batching, precision).

Each field is IMAGETRUST_<FIELD> and --<field-with-dashes>; the help text says what it
does, the comment above it why the default is what it is. docs/synthesis.md tells how to
tune them.
"""

from __future__ import annotations

import dataclasses

from services.common.config import ServerConfig, setting


@dataclasses.dataclass(frozen=True)
class SynthesisConfig(ServerConfig):
    port: int = setting(50053, "gRPC port")
    metrics_port: int = setting(9093, "Prometheus /metrics HTTP port (-1: off)")
    model_path: str = setting("", "checkpoint file (empty: the default model shipped in the package)")
    device: str = setting("auto", "torch device: auto, cpu, cuda, cuda:N")
    # Model inputs, not images, are what a forward pass batches: a CNN image is 1 global view
    # + up to max_tiles tiles (41 for the shipped forensic model), a consistency image up to
    # max_patches feature rows (512; ~1 KB each). 512 holds one photo's rows in one pass and
    # rows of several photos together: a hidden=256 depth=3 embedder on (N, 274) rows, one
    # CPU thread, ran 10.3 us per row at batch 64 against 5.5 at 512 on torch (ONNX Runtime
    # 4.4 and 4.0). For the forensic CNN, 48-64 inputs measured best on CPU (0.58 ms per
    # input at concurrency 16, 0.77 at 128, 1.26 at 1024: batches outgrow the caches), so
    # set 64 when serving a CNN checkpoint on CPU. GPUs want more.
    max_batch_size: int = setting(512, "model inputs (views, tiles or patch rows) per forward pass")
    # 5 ms: long enough to gather concurrent requests into one batch, short next to a
    # forward pass (tens of ms on CPU).
    max_queue_delay_ms: float = setting(5.0, "longest wait to fill a batch, ms")
    # Off = Triton without dynamic batching: a forward pass holds one request's inputs (its
    # tiles still batch together). The benchmark's baseline; also an option when requests
    # already carry enough inputs to fill the device.
    dynamic_batching: bool = setting(True, "batch model inputs across requests (off: one request per forward pass)")
    # 8192 inputs: 16 consistency photos of 512 patch rows (~8 MB of features) may wait, so
    # a burst is queued rather than refused; a Detect is refused up front when max_patches
    # more rows would not fit. For a CNN checkpoint an input is a 256 px tile (~0.8 MB of
    # float32), so there 2048 (about 50 large photos of 41 inputs) bounds memory instead.
    max_queue_size: int = setting(8192, "queued model inputs (views, tiles or patch rows); more get RESOURCE_EXHAUSTED")
    decode_workers: int = setting(2, "threads decoding images off the event loop")
    # 0: every core the process may use (sched_getaffinity), which is what a CPU pod's
    # limit grants; set lower when decode threads should keep a core for themselves.
    torch_threads: int = setting(0, "intra-op threads for CPU inference (0: all available cores)")
    # CPU: "auto" is float32 (scores exactly as calibrated); "bf16" is an opt-in speed-up on
    # CPUs with native bf16, refused at start-up where oneDNN would only emulate it.
    precision: str = setting(
        "auto",
        "autocast: auto (CUDA: bf16 where supported, else fp16; CPU: fp32), "
        "bf16 (CUDA, or CPU with AVX512-BF16/AMX), fp16 (CUDA), fp32",
    )
    # 2 passes per batch shape and size: the first allocates and (on CUDA) autotunes
    # kernels, the second confirms the steady state before health turns SERVING.
    warmup_iterations: int = setting(2, "warm-up forward passes per input shape and batch size")
    # torch: eager PyTorch on CPU or CUDA. onnxruntime: the checkpoint's network exported to
    # ONNX at start-up (parity-checked) and run by ONNX Runtime on the CPU, float32; same
    # preprocessing and scoring. auto: onnxruntime on a CPU at float32, where it measured
    # 1.5x the images/s of torch eager through the service (forward alone 1.2-2.9x;
    # bench/bench_onnx.py, docs/benchmarks.md), torch on CUDA and for bf16/fp16; a network
    # that does not export falls back to torch with a warning (services/synthesis/onnx_runtime.py).
    runtime: str = setting("auto", "model runtime: auto (CPU fp32: onnxruntime; else torch), torch, onnxruntime")

    def validate(self) -> None:
        super().validate()
        if self.max_batch_size < 1 or self.max_queue_size < 1 or self.max_queue_delay_ms < 0:
            raise ValueError("max_batch_size and max_queue_size must be >= 1, max_queue_delay_ms >= 0")
        if self.max_batch_size > self.max_queue_size:
            raise ValueError("max_batch_size cannot exceed max_queue_size (a batch is taken from the queue)")
        if self.runtime not in ("auto", "torch", "onnxruntime"):
            raise ValueError("runtime must be auto, torch or onnxruntime")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ValueError("precision must be auto, bf16, fp16 or fp32")
