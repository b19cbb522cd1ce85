"""The dynamic batcher on its own: batches form, results go back to the right request,
the queue is bounded, expired requests are dropped before compute.

The forward function here is a real computation (each input's mean), gated by an event
where a test needs the inference thread busy at a known moment.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch
from prometheus_client import CollectorRegistry

from services.common.errors import DeadlineExceeded, Overloaded
from services.synthesis.batcher import BatcherMetrics, DynamicBatcher

GATE_TIMEOUT_S = 10.0  # seconds a gated forward waits at most (a hung test fails, never hangs)


class GatedForward:
    """Returns each input's mean; blocks on `gate` while `hold` is set; records batches."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[float]] = []

    def __call__(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        self.entered.set()
        assert self.gate.wait(GATE_TIMEOUT_S), "test never opened the gate"
        out = torch.stack(inputs).flatten(1).mean(1)
        self.batches.append(out.tolist())
        return out


def _batcher(forward, registry, **kw) -> DynamicBatcher:
    params = {"max_batch_size": 8, "max_queue_delay_s": 0.05, "max_queue_size": 64, **kw}
    b = DynamicBatcher(forward, metrics=BatcherMetrics(registry), **params)
    b.start()
    return b


def _inputs(value: float, n: int = 1, shape=(3, 4, 4)) -> list[torch.Tensor]:
    return [torch.full(shape, value + i) for i in range(n)]


async def _first_pass_held(batcher: DynamicBatcher, fwd: GatedForward) -> asyncio.Future:
    """Submits two inputs and returns once the inference thread holds them at the gate."""
    first = asyncio.ensure_future(batcher.submit(_inputs(1.0, 2)))
    while not fwd.entered.is_set():
        await asyncio.sleep(0.005)
    return first


def test_batches_form_and_results_route_back():
    registry = CollectorRegistry()
    fwd = GatedForward()
    fwd.gate.set()
    batcher = _batcher(fwd, registry)

    async def main():
        # 12 concurrent requests of 3 inputs each (a global view + 2 tiles, say).
        return await asyncio.gather(*(batcher.submit(_inputs(100.0 * r, 3)) for r in range(12)))

    results = asyncio.run(main())
    batcher.close()
    for r, values in enumerate(results):
        assert values == [100.0 * r, 100.0 * r + 1, 100.0 * r + 2]
    count = registry.get_sample_value("imagetrust_synthesis_batch_size_count")
    total = registry.get_sample_value("imagetrust_synthesis_batch_size_sum")
    assert total == 36
    assert count < 36 / 2, f"{count} forward passes for 36 inputs: batching did not happen"
    assert max(len(b) for b in fwd.batches) <= 8
    assert registry.get_sample_value("imagetrust_synthesis_queue_depth") == 0


def test_a_pass_takes_whole_requests():
    """Requests are not split across passes when they fit in one: 4 queued requests of 3
    inputs with max_batch_size 8 run as 6 + 6 (two whole requests each), not 8 + 4; a
    request larger than max_batch_size alone is split; a small one may fill the gap."""
    registry = CollectorRegistry()
    fwd = GatedForward()
    batcher = _batcher(fwd, registry, max_batch_size=8)

    async def main():
        first = asyncio.ensure_future(batcher.submit(_inputs(0.0, 1)))
        await asyncio.get_running_loop().run_in_executor(None, fwd.entered.wait, GATE_TIMEOUT_S)
        sizes = (3, 3, 3, 3, 10, 2)
        rest = [asyncio.ensure_future(batcher.submit(_inputs(100.0 * r, n))) for r, n in enumerate(sizes, 1)]
        await asyncio.sleep(0.05)
        fwd.gate.set()
        return await asyncio.gather(first, *rest), sizes

    results, sizes = asyncio.run(main())
    batcher.close()
    for r, (values, n) in enumerate(zip(results[1:], sizes), 1):
        assert values == [100.0 * r + i for i in range(n)]
    # [first] | r1 r2 + r6 (2 fills the gap) | r3 r4 | r5 split 8 + 2
    assert [len(b) for b in fwd.batches] == [1, 8, 6, 8, 2]


def test_without_dynamic_batching_a_pass_holds_one_request():
    """The per-request mode (the benchmark's "one request at a time"): requests queued
    together still get one forward pass each, a request's own inputs stay together, and one
    larger than max_batch_size spans passes."""
    registry = CollectorRegistry()
    fwd = GatedForward()
    batcher = _batcher(fwd, registry, max_batch_size=4, across_requests=False)

    async def main():
        first = asyncio.ensure_future(batcher.submit(_inputs(0.0, 1)))
        # Hold the inference thread inside the first pass until the others have queued.
        await asyncio.get_running_loop().run_in_executor(None, fwd.entered.wait, GATE_TIMEOUT_S)
        rest = [asyncio.ensure_future(batcher.submit(_inputs(100.0 * r, n))) for r, n in ((1, 3), (2, 3), (3, 6))]
        await asyncio.sleep(0.05)
        fwd.gate.set()
        return await asyncio.gather(first, *rest)

    results = asyncio.run(main())
    batcher.close()
    assert results == [[0.0], [100.0, 101.0, 102.0], [200.0, 201.0, 202.0], [300.0, 301.0, 302.0, 303.0, 304.0, 305.0]]
    # 13 inputs queued at once would fill 4 passes of 4 across requests; one request per
    # pass takes 5: [first], [r1 x3], [r2 x3], [r3 x4], [r3 x2].
    assert [len(b) for b in fwd.batches] == [1, 3, 3, 4, 2]


def test_mixed_shapes_are_batched_separately():
    fwd = GatedForward()
    fwd.gate.set()
    batcher = _batcher(fwd, CollectorRegistry())

    async def main():
        return await asyncio.gather(
            batcher.submit(_inputs(1.0, 2, (3, 4, 4))),
            batcher.submit(_inputs(5.0, 2, (3, 8, 8))),
        )

    assert asyncio.run(main()) == [[1.0, 2.0], [5.0, 6.0]]
    batcher.close()


def test_full_queue_refuses_and_expired_request_is_dropped_before_compute():
    registry = CollectorRegistry()
    fwd = GatedForward()
    batcher = _batcher(fwd, registry, max_batch_size=2, max_queue_delay_s=0.0, max_queue_size=4)

    async def main():
        first = await _first_pass_held(batcher, fwd)
        expiring = asyncio.ensure_future(batcher.submit(_inputs(50.0, 2), deadline=time.monotonic() + 0.05))
        queued = asyncio.ensure_future(batcher.submit(_inputs(7.0, 2)))
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match="queue full"):
            await batcher.submit(_inputs(9.0, 1))  # 4 queued of 4
        await asyncio.sleep(0.1)  # the expiring request's deadline passes while queued
        fwd.gate.set()
        assert await first == [1.0, 2.0]
        with pytest.raises(DeadlineExceeded, match="before compute"):
            await expiring
        assert await queued == [7.0, 8.0]

    asyncio.run(main())
    batcher.close()
    computed = [v for batch in fwd.batches for v in batch]
    assert 50.0 not in computed and 51.0 not in computed  # never reached the model
    assert registry.get_sample_value("imagetrust_synthesis_dropped_requests_total", {"reason": "deadline"}) == 1
    assert registry.get_sample_value("imagetrust_synthesis_dropped_requests_total", {"reason": "queue_full"}) == 1


def test_past_deadline_refused_at_submit_and_forward_error_fails_only_its_batch():
    calls = {"n": 0}

    def flaky(inputs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return torch.stack(inputs).flatten(1).mean(1)

    batcher = _batcher(flaky, CollectorRegistry(), max_queue_delay_s=0.0)

    async def main():
        with pytest.raises(DeadlineExceeded):
            await batcher.submit(_inputs(1.0), deadline=time.monotonic() - 1)
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit(_inputs(1.0))
        assert await batcher.submit(_inputs(3.0)) == [3.0]  # the thread survived

    asyncio.run(main())
    batcher.close()


def test_a_cancelled_request_leaves_the_queue_at_once():
    """Its inputs must not hold queue room (or the depth gauge) until the pass in flight ends."""
    registry = CollectorRegistry()
    fwd = GatedForward()
    batcher = _batcher(fwd, registry, max_batch_size=2, max_queue_delay_s=0.0, max_queue_size=6)

    async def main():
        first = await _first_pass_held(batcher, fwd)
        doomed = asyncio.ensure_future(batcher.submit(_inputs(30.0, 6)))  # fills the queue
        await asyncio.sleep(0.01)
        assert batcher.depth == 6
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert batcher.depth == 0
        assert registry.get_sample_value("imagetrust_synthesis_queue_depth") == 0
        # The room is free while the first pass still runs: a live request is admitted.
        live = asyncio.ensure_future(batcher.submit(_inputs(5.0, 6)))
        await asyncio.sleep(0.01)
        assert not live.done() and batcher.depth == 6
        fwd.gate.set()
        assert await first == [1.0, 2.0]
        assert await live == [5.0, 6.0, 7.0, 8.0, 9.0, 10.0]

    asyncio.run(main())
    batcher.close()
    computed = [v for batch in fwd.batches for v in batch]
    assert 30.0 not in computed  # the cancelled request never reached the model
    assert registry.get_sample_value("imagetrust_synthesis_dropped_requests_total", {"reason": "cancelled"}) == 1


def test_feature_rows_in_vector_rows_out():
    # Patch embedders: (F,) inputs, (N, E) outputs; each request gets its own rows back.
    registry = CollectorRegistry()
    weight = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    batcher = _batcher(lambda xs: torch.stack(xs) @ weight, registry, max_batch_size=16)

    async def scenario():
        rows = [[torch.full((6,), float(r + i)) for i in range(n)] for r, n in ((0, 3), (10, 5))]
        return rows, await asyncio.gather(*(batcher.submit(r) for r in rows))

    try:
        rows, results = asyncio.run(scenario())
    finally:
        batcher.close()
    for sent, got in zip(rows, results):
        assert len(got) == len(sent)
        for x, y in zip(sent, got):
            assert y.shape == (2,) and y.tolist() == pytest.approx((x @ weight).tolist())
    assert registry.get_sample_value("imagetrust_synthesis_batch_size_count") == 1  # one pass for both
