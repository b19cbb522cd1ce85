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
    # An image is 1 global view + up to the checkpoint's max_tiles tiles (40 for the shipped
    # model): model inputs, not images, are what a forward pass batches. 64: with the shipped
    # model on CPU, 48-64 ran 0.58 ms per input at concurrency 16 against 0.96 ms at 32 (a
    # slower oneDNN kernel choice), 0.77 at 128 and 1.26 at 1024 (batches outgrow the caches);
    # 64 also holds one large photo's 41 inputs in one pass. GPUs want more.
    max_batch_size: int = setting(64, "model inputs (global views and tiles) per forward pass")
    # 5 ms: long enough to gather concurrent requests into one batch, short next to a
    # forward pass (tens of ms on CPU).
    max_queue_delay_ms: float = setting(5.0, "longest wait to fill a batch, ms")
    # Off = Triton without dynamic batching: a forward pass holds one request's inputs (its
    # tiles still batch together). The benchmark's baseline; also an option when requests
    # already carry enough inputs to fill the device.
    dynamic_batching: bool = setting(True, "batch model inputs across requests (off: one request per forward pass)")
    # 2048 inputs: about 50 large photos of the shipped model (41 inputs each) may wait; at
    # 256 only 6 could, so a modest burst was refused. ~100 MB of tensors at most.
    max_queue_size: int = setting(2048, "queued model inputs; more get RESOURCE_EXHAUSTED")
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
        if self.runtime not in ("auto", "torch", "onnxruntime"):
            raise ValueError("runtime must be auto, torch or onnxruntime")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ValueError("precision must be auto, bf16, fp16 or fp32")
