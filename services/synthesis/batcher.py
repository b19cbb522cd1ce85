"""A dynamic batcher in the manner of Triton's: many requests, one forward pass.

Requests put their model inputs on one bounded queue. A dedicated inference thread takes
the oldest input and waits until either `max_batch_size` inputs are queued or the oldest
has waited `max_queue_delay`; then it runs one forward pass over up to `max_batch_size`
inputs of the same shape and routes each output back to the request it came from.

One image is several model inputs (its global view and its tiles, or the feature rows of
its valid patches for a consistency model), so inputs, not requests, are the unit of
batching: a batch mixes inputs of different requests, and a
request's inputs may span two batches; its future resolves when its last input is done.

With `across_requests=False` (Triton's model without dynamic batching) a forward pass
holds the inputs of ONE request only (up to `max_batch_size` of them, the rest in the
next pass) and never waits: the honest "one request at a time" baseline, since one
image's tiles batch with each other anyway.

Admission control and deadlines:
- the queue holds at most `max_queue_size` inputs; a request that does not fit is
  refused at once with Overloaded (RESOURCE_EXHAUSTED), so clients back off and the
  autoscaler (queue depth gauge) reacts, instead of latency growing without bound;
- a request whose deadline has passed is dropped when its inputs reach the head of the
  queue, before any compute is spent on it (DeadlineExceeded); a cancelled one (the client
  went away) leaves the queue at once.

The event loop only enqueues and awaits futures: stacking, the forward pass and routing
run on the inference thread, so the loop keeps serving health and new calls meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common import tracing
from services.common.errors import (
    DRAINING,
    DRAINING_RETRY_S,
    IMAGE_EXCEEDS_QUEUE,
    DeadlineExceeded,
    NotReady,
    Overloaded,
    TooLarge,
)

log = logging.getLogger("imagetrust.synthesis.batcher")
_tracer = tracing.tracer("imagetrust.synthesis.batcher")

# Seconds: queue waits are around the batching delay (ms); CPU batches take 10 ms to seconds.
WAIT_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
# Seconds, one forward pass (GPU: ms; CPU: 10 ms to seconds) and one request's whole time in
# the batcher (its queue wait plus the pass or passes that computed its inputs): fine enough
# that histogram_quantile's p99 of each can be read against max_queue_delay + 2 x one pass
# to within ~10-25 %.
COMPUTE_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.6,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
)
REQUEST_BUCKETS_S = COMPUTE_BUCKETS_S
# Inputs per batch: powers of two up to the default max_batch_size (512 patch rows).
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class BatcherMetrics:
    """The batcher's Prometheus metrics, on the server's own registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.queue_depth = Gauge(
            "imagetrust_synthesis_queue_depth",
            "Model inputs waiting for a batch (global views + tiles, or patch rows); scale out on this.",
            registry=registry,
        )
        self.batch_size = Histogram(
            "imagetrust_synthesis_batch_size",
            "Model inputs per forward pass.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "imagetrust_synthesis_queue_wait_seconds",
            "Time a model input waited in the queue, seconds.",
            buckets=WAIT_BUCKETS_S,
            registry=registry,
        )
        self.compute = Histogram(
            "imagetrust_synthesis_compute_seconds",
            "Time of one forward pass (stack, copy, model, copy back), seconds.",
            buckets=COMPUTE_BUCKETS_S,
            registry=registry,
        )
        self.request = Histogram(
            "imagetrust_synthesis_batcher_request_seconds",
            "One request's time in the batcher: queue wait plus the forward passes of its inputs, seconds.",
            buckets=REQUEST_BUCKETS_S,
            registry=registry,
        )
        self.dropped = Counter(
            "imagetrust_synthesis_dropped_requests",
            "Requests not computed, by reason (queue_full, deadline, cancelled, error).",
            ("reason",),
            registry=registry,
        )


@dataclasses.dataclass(eq=False)
class _Request:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    deadline: float | None  # time.monotonic() seconds, None: no deadline
    results: list[Any]  # per input: a float logit, or an (E,) numpy row for vector outputs
    remaining: int
    dead: bool = False  # failed, timed out or cancelled: its queued inputs are skipped
    # Tracing on only: the forward passes that held its inputs, as (start, end) wall-clock
    # nanoseconds and that pass's batch size; the request's spans are made from them.
    passes: list[tuple[int, int, int]] | None = None

    def fail(self, exc: BaseException) -> None:
        self.dead = True
        self.loop.call_soon_threadsafe(_set_exception, self.future, exc)


@dataclasses.dataclass(eq=False)
class _Input:
    request: _Request
    index: int
    tensor: torch.Tensor
    enqueued: float  # time.monotonic() seconds


def _trace_passes(enqueued_ns: int, passes: list[tuple[int, int, int]], inputs: int) -> None:
    """Spans for one request's time in the batcher, under the caller's current span: the
    queue wait (enqueued until its first pass began) and each forward pass it was part of."""
    wait = _tracer.start_span("synthesis queue wait", start_time=enqueued_ns, attributes={"imagetrust.inputs": inputs})
    wait.end(end_time=passes[0][0])
    for start_ns, end_ns, batch_size in passes:
        forward = _tracer.start_span(
            "synthesis forward pass", start_time=start_ns, attributes={"imagetrust.batch_size": batch_size}
        )
        forward.end(end_time=end_ns)


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _set_result(future: asyncio.Future, value: list[Any]) -> None:
    if not future.done():
        future.set_result(value)


class DynamicBatcher:
    """Batches model inputs across requests. `run_batch(inputs) -> outputs` runs one forward
    pass over a list of same-shaped CPU tensors ((C, H, W) images or (F,) feature rows) and
    returns (N,) logits or (N, E) vectors (the engine stacks them, into pinned memory on
    CUDA). Each input's result is a float for (N,) outputs, an (E,) numpy row otherwise."""

    def __init__(
        self,
        run_batch: Callable[[list[torch.Tensor]], torch.Tensor],
        *,
        max_batch_size: int,
        max_queue_delay_s: float,
        max_queue_size: int,
        metrics: BatcherMetrics | None = None,
        name: str = "synthesis-infer",
        across_requests: bool = True,
    ) -> None:
        if max_batch_size < 1 or max_queue_size < 1 or max_queue_delay_s < 0:
            raise ValueError("max_batch_size and max_queue_size must be >= 1, max_queue_delay_s >= 0")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max_queue_size
        self.across_requests = across_requests
        self.metrics = metrics or BatcherMetrics(None)
        self._queue: collections.deque[_Input] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._worker, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def submit(self, inputs: Sequence[torch.Tensor], deadline: float | None = None) -> list[Any]:
        """Queues one request's inputs; returns their outputs in the same order.

        deadline is a time.monotonic() instant. Raises Overloaded when the inputs do not
        fit in the queue, DeadlineExceeded when the deadline passes before compute.
        """
        if not inputs:
            raise ValueError("a request needs at least one model input")
        if len(inputs) > self.max_queue_size:
            # TooLarge, not Overloaded: however long the caller waits, this image cannot fit.
            raise TooLarge(
                f"one image needs {len(inputs)} model inputs, more than the queue holds ({self.max_queue_size})",
                reason=IMAGE_EXCEEDS_QUEUE,
                metadata={"inputs": len(inputs), "max_queue_size": self.max_queue_size},
            )
        now = time.monotonic()
        if deadline is not None and deadline <= now:
            self.metrics.dropped.labels("deadline").inc()
            raise DeadlineExceeded("the deadline passed before the image was queued for the model")
        loop = asyncio.get_running_loop()
        request = _Request(loop, loop.create_future(), deadline, [0.0] * len(inputs), len(inputs))
        enqueued_ns = 0
        if tracing.enabled():
            request.passes, enqueued_ns = [], time.time_ns()
        with self._cond:
            if self._closed:
                raise NotReady("the synthesis model is shutting down", reason=DRAINING, retry_after_s=DRAINING_RETRY_S)
            if len(self._queue) + len(inputs) > self.max_queue_size:
                self.metrics.dropped.labels("queue_full").inc()
                raise Overloaded(
                    f"synthesis queue full ({len(self._queue)} of {self.max_queue_size} model inputs queued); "
                    "retry with backoff",
                    metadata={
                        "queued_inputs": len(self._queue),
                        "inputs": len(inputs),
                        "max_queue_size": self.max_queue_size,
                    },
                )
            self._queue.extend(_Input(request, i, t, now) for i, t in enumerate(inputs))
            self.metrics.queue_depth.set(len(self._queue))
            self._cond.notify()
        try:
            result = await request.future
            self.metrics.request.observe(time.monotonic() - now)
            if request.passes:
                _trace_passes(enqueued_ns, request.passes, len(inputs))
            return result
        except asyncio.CancelledError:
            if not request.dead:
                request.dead = True  # the client went away: skip its inputs
                self.metrics.dropped.labels("cancelled").inc()
                self._discard(request)
            raise

    def _discard(self, request: _Request) -> None:
        """Takes a cancelled request's inputs out of the queue now. Left for the next pass to
        skip, they would count against max_queue_size (and the autoscaler's queue depth) for
        as long as the pass in flight runs: seconds on a CPU, refusing live requests."""
        with self._cond:
            kept = collections.deque(item for item in self._queue if item.request is not request)
            if len(kept) != len(self._queue):
                self._queue = kept
                self.metrics.queue_depth.set(len(kept))

    def close(self, timeout_s: float = 5.0) -> None:
        """Stops after the queued work; later submits get NotReady."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    # --- inference thread -----------------------------------------------------------------

    def _take_batch(self) -> list[_Input] | None:
        """Waits for a batch to form (under the lock); None when closed and drained."""
        while True:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            # Triton's rule: wait for a full batch, but no longer than the delay after the
            # oldest input arrived.
            flush_at = self._queue[0].enqueued + self.max_queue_delay_s
            while self.across_requests and not self._closed and len(self._queue) < self.max_batch_size:
                left = flush_at - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = self._collect(time.monotonic())
            self.metrics.queue_depth.set(len(self._queue))
            if batch:
                return batch

    def _collect(self, now: float) -> list[_Input]:
        """Up to max_batch_size live inputs shaped like the first live one, in WHOLE requests:
        a request whose inputs would not all fit waits for the next pass (unless the pass is
        empty and it alone exceeds max_batch_size). Split requests would wait for two passes
        (measured: with 37-input photos and batches of 64, splitting made every call span
        two passes). Drops the dead and the expired on the way (before compute)."""
        live: list[_Input] = []
        for item in self._queue:
            req = item.request
            if req.dead:
                continue
            if req.deadline is not None and req.deadline <= now:
                self.metrics.dropped.labels("deadline").inc()
                req.fail(
                    DeadlineExceeded(
                        f"deadline passed after {now - item.enqueued:.3f} s in the synthesis queue, before compute"
                    )
                )
                continue
            live.append(item)
        if not live:
            self._queue = collections.deque()
            return []
        shape = live[0].tensor.shape
        pending = collections.Counter(id(item.request) for item in live if item.tensor.shape == shape)
        batch: list[_Input] = []
        keep: collections.deque[_Input] = collections.deque()
        admitted: dict[int, bool] = {}
        for item in live:
            key = id(item.request)
            if item.tensor.shape == shape and key not in admitted:
                room = self.max_batch_size - len(batch)
                whole = pending[key] <= room
                admitted[key] = room > 0 and (whole or not batch) and (self.across_requests or not batch)
            if item.tensor.shape == shape and admitted[key] and len(batch) < self.max_batch_size:
                batch.append(item)
            else:
                keep.append(item)
        self._queue = keep
        return batch

    def _worker(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._cond:
                batch = self._take_batch()
            if batch is None:
                return
            self._execute(batch)

    def _execute(self, batch: list[_Input]) -> None:
        start = time.monotonic()
        start_ns = time.time_ns() if tracing.enabled() else 0
        for item in batch:
            self.metrics.queue_wait.observe(start - item.enqueued)
        self.metrics.batch_size.observe(len(batch))
        try:
            out = self._run_batch([item.tensor for item in batch]).detach().cpu()
            if out.ndim == 0 or out.shape[0] != len(batch):
                raise RuntimeError(f"model returned outputs {tuple(out.shape)} for a batch of {len(batch)}")
            # (N,) logits route as floats; (N, E) embeddings as one numpy row per input.
            values: list[Any] = out.tolist() if out.ndim == 1 else list(out.numpy())
        except Exception as exc:
            log.exception("forward pass failed for a batch of %d", len(batch))
            for req in {item.request for item in batch}:
                if not req.dead:
                    self.metrics.dropped.labels("error").inc()
                    req.fail(exc)
            return
        finally:
            self.metrics.compute.observe(time.monotonic() - start)
            if start_ns:
                end_ns = time.time_ns()
                for req in {item.request for item in batch}:
                    if req.passes is not None:
                        req.passes.append((start_ns, end_ns, len(batch)))
        for item, value in zip(batch, values):
            req = item.request
            if req.dead:
                continue
            req.results[item.index] = value
            req.remaining -= 1
            if req.remaining == 0:
                req.loop.call_soon_threadsafe(_set_result, req.future, req.results)
