"""ordered_map: concurrent, in input order, bounded window, errors passed on."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.ordered import ordered_map


async def _source(n: int, fail_at: int | None = None):
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("client stream broke")
        yield i


def test_results_in_input_order_although_they_finish_in_reverse():
    running = {"now": 0, "max": 0}
    finished: list[int] = []

    async def work(i: int, item: int) -> int:
        running["now"] += 1
        running["max"] = max(running["max"], running["now"])
        await asyncio.sleep(0.05 - 0.01 * (item % 5))  # later items finish first
        running["now"] -= 1
        finished.append(item)
        return item * 10

    async def run():
        return [r async for r in ordered_map(_source(10), work, window=5)]

    assert asyncio.run(run()) == [i * 10 for i in range(10)]
    assert finished != sorted(finished)  # really out of order underneath
    assert running["max"] == 5


def test_a_source_error_ends_the_stream_after_the_earlier_results():
    async def run():
        out = []
        with pytest.raises(RuntimeError, match="client stream broke"):
            async for r in ordered_map(_source(10, fail_at=3), lambda i, x: asyncio.sleep(0, x), window=2):
                out.append(r)
        return out

    assert asyncio.run(run()) == [0, 1, 2]


def test_window_must_be_positive():
    async def run():
        return [r async for r in ordered_map(_source(1), lambda i, x: asyncio.sleep(0, x), window=0)]

    with pytest.raises(ValueError):
        asyncio.run(run())
