"""The synthesis engine (Triton python-backend style: load(), detect(), close()).

detect(): bytes -> limits -> decode (EXIF orientation applied) and preprocess on a thread
pool -> the dynamic batcher (global view + tiles, batched across requests) -> calibrated
scores combined by the checkpoint's local/global rule -> Detection.

Consistency checkpoints (models.EMBEDDING_ARCHS) take the patch path instead: decode ->
consistency.prepare_patches (native patch grid, validity, trace features of the valid
patches) on the same pool -> each feature row is one model input to the SAME batcher, so
patch rows of concurrent images share forward passes -> consistency.score_patches
(outliers, statistic, calibration). Too few valid patches: `uncertain`, no model call.

Which model: SynthesisConfig.model_path, else the packaged DEFAULT_MODEL_PATH. If neither
exists (a source tree without the shipped weights), an untrained "forensic" network with a
fixed seed stands in, with a WARNING log and placeholder=True in every response, so
`imagetrust up` still works; the gateway ignores placeholder scores.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pathlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch
from prometheus_client import CollectorRegistry, Histogram, Info

from services.common import tracing
from services.common.config import SynthesisConfig
from services.common.errors import DeadlineExceeded, NotReady, Overloaded
from services.common.imaging import decode_rgb
from services.common.limits import check_bytes
from services.synthesis import DEFAULT_MODEL_PATH, consistency
from services.synthesis.batcher import BatcherMetrics, DynamicBatcher
from services.synthesis.checkpoint import Checkpoint, default_specs, load_checkpoint, model_input_shapes
from services.synthesis.models import build_model
from services.synthesis.onnx_runtime import OrtPredictor, make_predictor
from services.synthesis.predictor import Predictor, configure_cpu_threads, resolve_device
from services.synthesis.preprocess import Prepared, as_array, prepare
from services.synthesis.scoring import CalibrationSpec, image_scores

T = TypeVar("T")
log = logging.getLogger("imagetrust.synthesis.engine")
_tracer = tracing.tracer("imagetrust.synthesis")

PLACEHOLDER_ARCH = "forensic"
PLACEHOLDER_SEED = 0  # fixed: the placeholder answers the same on every pod and restart
PLACEHOLDER_VERSION = "placeholder-untrained-forensic"
# Seconds: a 224 px JPEG decodes and prepares in a few ms, a 12 MP photo in ~0.2 s on one core;
# the time includes waiting for a free decode worker, which is what grows under load.
PREPARE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def inputs_per_image(ckpt: Checkpoint) -> int:
    """The most model inputs one image can need: 1 global view + tiles, or max_patches rows."""
    if ckpt.consistency is not None:
        return ckpt.consistency.sampling.max_patches
    return 1 + (ckpt.tiling.max_tiles if ckpt.tiling.enabled else 0)


@dataclasses.dataclass(frozen=True)
class Detection:
    score: float
    global_score: float
    local_score: float
    width: int
    height: int
    model_version: str
    model_arch: str
    preprocessing: str
    device: str
    placeholder: bool
    heatmap: tuple[tuple[float, ...], ...] | None = None
    tile_size: int = 0  # px, edge of one heatmap cell's square (a tile, or a patch)
    # Consistency models only: too few valid patches to judge (score 0, not evidence).
    uncertain: bool = False
    valid_patches: int = 0
    method: str = "cnn"  # "cnn", "consistency" (the embedder) or "splicebuster" (baseline)
    heatmap_stride: int = 0  # px between neighbouring cells' top-left corners (0: not given)
    heatmap_origin: tuple[int, int] = (0, 0)  # (x, y) px of the first cell's top-left corner


def placeholder_checkpoint() -> Checkpoint:
    """An untrained forensic model with the recommended specs, labelled placeholder."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PLACEHOLDER_SEED)
        model = build_model(PLACEHOLDER_ARCH)
    pre, tiling = default_specs(PLACEHOLDER_ARCH)
    return Checkpoint(
        arch=PLACEHOLDER_ARCH,
        arch_kwargs={},
        state_dict=model.state_dict(),
        preprocessing=pre,
        tiling=tiling,
        calibration=CalibrationSpec(),
        model_version=PLACEHOLDER_VERSION,
        placeholder=True,
        training={"note": "untrained placeholder: scores carry no information"},
    )


def resolve_checkpoint(model_path: str, default_path: pathlib.Path | None = None) -> Checkpoint:
    """The configured checkpoint; the packaged default; or the labelled placeholder."""
    default_path = DEFAULT_MODEL_PATH if default_path is None else default_path  # read at call time
    if model_path:
        path = pathlib.Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"synthesis model_path {path} does not exist (unset it to use the default model)")
        return load_checkpoint(path)
    if default_path.is_file():
        return load_checkpoint(default_path)
    log.warning(
        "no trained synthesis model: %s does not exist and model_path is unset; serving an UNTRAINED "
        "placeholder (responses have placeholder=true; the gateway ignores their scores)",
        default_path,
    )
    return placeholder_checkpoint()


class SynthesisEngine:
    def __init__(self, config: SynthesisConfig) -> None:
        self.config = config
        self._decode_pool = ThreadPoolExecutor(max_workers=config.decode_workers, thread_name_prefix="decode")
        self.checkpoint: Checkpoint | None = None
        self.predictor: Predictor | OrtPredictor | None = None
        self.batcher: DynamicBatcher | None = None
        self._description = ""
        self._prepare_seconds: Histogram | None = None

    async def load(self, registry: CollectorRegistry | None = None) -> None:
        """Loads the checkpoint, warms the model up, then starts the inference thread.

        Runs off the event loop (health keeps answering NOT_SERVING meanwhile).
        """
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._load_model)
        assert self.checkpoint is not None and self.predictor is not None
        self.batcher = DynamicBatcher(
            self.predictor.forward,
            max_batch_size=self.config.max_batch_size,
            max_queue_delay_s=self.config.max_queue_delay_ms / 1000.0,
            max_queue_size=self.config.max_queue_size,
            metrics=BatcherMetrics(registry),
            across_requests=self.config.dynamic_batching,
        )
        Info("imagetrust_synthesis_model", "The served synthesis model.", registry=registry).info(
            {
                "model_version": self.checkpoint.model_version,
                "arch": self.checkpoint.arch,
                "device": self.predictor.device_name,
                "precision": self.predictor.precision_name,
                "placeholder": str(self.checkpoint.placeholder).lower(),
                "preprocessing": self._description,
            }
        )
        # With the batcher's own histograms this splits a Detect's server time into decode,
        # queue and compute: where a latency tail comes from, without a profiler.
        self._prepare_seconds = Histogram(
            "imagetrust_synthesis_prepare_seconds",
            "Decode and preprocess of one image, waiting for a decode worker included, seconds.",
            buckets=PREPARE_BUCKETS_S,
            registry=registry,
        )
        self.batcher.start()
        log.info(
            "synthesis model ready",
            extra={
                "model_version": self.checkpoint.model_version,
                "arch": self.checkpoint.arch,
                "device": self.predictor.device_name,
                "precision": self.predictor.precision_name,
                "runtime": "torch" if isinstance(self.predictor, Predictor) else "onnxruntime",
                "torch_threads": torch.get_num_threads(),
                "placeholder": self.checkpoint.placeholder,
            },
        )

    def _load_model(self) -> None:
        device = resolve_device(self.config.device)
        if device.type == "cpu":
            configure_cpu_threads(self.config.torch_threads)
        ckpt = resolve_checkpoint(self.config.model_path)
        need = inputs_per_image(ckpt)
        if need > self.config.max_queue_size:
            what = "patch feature rows" if ckpt.consistency is not None else "inputs: 1 global view + tiles"
            raise ValueError(f"max_queue_size {self.config.max_queue_size} cannot hold one image (up to {need} {what})")
        predictor = make_predictor(ckpt, device, self.config.precision, self.config.runtime, torch.get_num_threads())
        predictor.reserve(self.config.max_batch_size)
        shapes = model_input_shapes(ckpt)
        started = time.monotonic()
        # Batch 1 and the batch one image fills (its views and tiles, or up to max_patches
        # rows), capped at max_batch_size: larger batches form only under load, and warming a
        # CNN at 512 tiles took ~20 s and GBs on CPU for nothing a request would reuse.
        largest = min(self.config.max_batch_size, need)
        predictor.warm_up(shapes, [1, largest], self.config.warmup_iterations)
        log.info("synthesis warm-up done", extra={"seconds": round(time.monotonic() - started, 3)})
        self.checkpoint, self.predictor = ckpt, predictor
        self._description = ckpt.describe()

    def _decode_prepare(self, data: bytes) -> Prepared:
        assert self.checkpoint is not None
        image = decode_rgb(data, self.config.max_pixels)
        return prepare(image, self.checkpoint.preprocessing, self.checkpoint.tiling)

    def _decode_patches(self, data: bytes) -> consistency.PreparedPatches:
        assert self.checkpoint is not None and self.checkpoint.consistency is not None
        image = as_array(decode_rgb(data, self.config.max_pixels))
        return consistency.prepare_patches(image, self.checkpoint.consistency)

    async def detect(self, data: bytes, want_heatmap: bool = False, time_remaining: float | None = None) -> Detection:
        """Scores one image. time_remaining: the caller's deadline in seconds (None: none)."""
        check_bytes(data, self.config.max_message_bytes)
        if self.batcher is None or self.checkpoint is None or self.predictor is None:
            raise NotReady("the synthesis model is still loading; retry shortly")
        deadline = None if time_remaining is None else time.monotonic() + time_remaining
        if deadline is not None and time_remaining <= 0:
            raise DeadlineExceeded("the deadline passed before the image was decoded")
        # One CNN image needs at least 1 input; a consistency image up to max_patches rows,
        # known only after decoding, so it is refused when the worst case would not fit.
        need = 1 if self.checkpoint.consistency is None else inputs_per_image(self.checkpoint)
        if self.batcher.depth + need > self.batcher.max_queue_size:
            # Refuse before spending a decode on an image the queue cannot take.
            raise Overloaded(
                f"synthesis queue full ({self.batcher.depth} model inputs queued); retry with backoff",
                metadata={"queued_inputs": self.batcher.depth, "max_queue_size": self.batcher.max_queue_size},
            )
        if self.checkpoint.consistency is not None:
            return await self._detect_patches(data, want_heatmap, deadline)
        prepared = await self._prepare(self._decode_prepare, data)
        logits = await self.batcher.submit(prepared.items(), deadline)
        ckpt = self.checkpoint
        scores = image_scores(logits, prepared.grid, ckpt.tiling, ckpt.calibration)
        return Detection(
            score=scores.score,
            global_score=scores.global_score,
            local_score=scores.local_score,
            width=prepared.width,
            height=prepared.height,
            model_version=ckpt.model_version,
            model_arch=ckpt.arch,
            preprocessing=self._description,
            device=self.predictor.device_name,
            placeholder=ckpt.placeholder,
            heatmap=scores.heatmap if want_heatmap else None,
            tile_size=prepared.grid.tile_size if (want_heatmap and prepared.grid is not None) else 0,
        )

    async def _prepare(self, work: Callable[[bytes], T], data: bytes) -> T:
        """Decode and prepare on the decode pool, traced and timed (waiting for a worker included)."""
        started = time.monotonic()
        with tracing.span(_tracer, "decode+prepare", {"imagetrust.image_bytes": len(data)}):
            prepared = await asyncio.get_running_loop().run_in_executor(self._decode_pool, work, data)
        if self._prepare_seconds is not None:
            self._prepare_seconds.observe(time.monotonic() - started)
        return prepared

    async def _detect_patches(self, data: bytes, want_heatmap: bool, deadline: float | None) -> Detection:
        """The consistency path: patch rows through the shared batcher, then the scorer."""
        ckpt, batcher, predictor = self.checkpoint, self.batcher, self.predictor
        assert ckpt is not None and ckpt.consistency is not None and batcher is not None and predictor is not None
        spec = ckpt.consistency
        loop = asyncio.get_running_loop()
        prepared = await self._prepare(self._decode_patches, data)
        if len(prepared.inputs):
            rows = list(torch.from_numpy(prepared.inputs).unbind(0))  # (F,) views, no copies
            outputs = await batcher.submit(rows, deadline)
            stacked = np.stack([np.asarray(o, dtype=np.float32) for o in outputs])
        else:  # too few valid patches: uncertain without spending a forward pass
            stacked = np.zeros((0, 0), dtype=np.float32)
        result = await loop.run_in_executor(
            self._decode_pool,
            consistency.score_patches,
            stacked,
            prepared.valid,
            prepared.grid,
            spec,
            want_heatmap,
        )
        grid = prepared.grid
        heatmap = result.heatmap if want_heatmap else None
        return Detection(
            score=result.score,
            global_score=result.score,
            local_score=result.score,
            width=prepared.width,
            height=prepared.height,
            model_version=ckpt.model_version,
            model_arch=ckpt.arch,
            preprocessing=self._description,
            device=predictor.device_name,
            placeholder=ckpt.placeholder,
            heatmap=heatmap,
            tile_size=grid.patch if heatmap else 0,
            uncertain=result.uncertain,
            valid_patches=result.valid_patches,
            method="consistency" if ckpt.arch == "consistency" else "splicebuster",
            heatmap_stride=grid.stride if heatmap else 0,
            heatmap_origin=(grid.xs[0], grid.ys[0]) if heatmap else (0, 0),
        )

    async def close(self) -> None:
        if self.batcher is not None:
            batcher = self.batcher
            await asyncio.get_running_loop().run_in_executor(None, batcher.close)
        self._decode_pool.shutdown(wait=False, cancel_futures=True)
