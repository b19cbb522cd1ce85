"""Concurrent processing of a stream with results in input order and a bounded window.

A chat stream sends images one after another; checking them one at a time would add a
full backend round trip per image. ordered_map starts up to `window` items at once and
still yields results in the order the items arrived; reading more input waits while the
window is full (back-pressure onto the client's stream).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_END = object()  # marks the end of the input in the queue


async def ordered_map(source: AsyncIterable[T], fn: Callable[[int, T], Awaitable[R]], window: int) -> AsyncIterator[R]:
    """Yields fn(i, item) for each item of source, in order, at most `window` running at once.

    fn must not raise for a per-item problem (return an error result instead); an exception
    from fn or from source ends the iteration with that exception.
    """
    if window < 1:
        raise ValueError("window must be >= 1")
    slots = asyncio.Semaphore(window)
    queue: asyncio.Queue = asyncio.Queue()

    async def feed() -> None:
        try:
            i = 0
            async for item in source:
                await slots.acquire()
                queue.put_nowait(asyncio.ensure_future(fn(i, item)))
                i += 1
            queue.put_nowait(_END)
        except BaseException as exc:
            queue.put_nowait(exc)
            raise

    feeder = asyncio.ensure_future(feed())
    try:
        while True:
            entry = await queue.get()
            if entry is _END:
                break
            if isinstance(entry, BaseException):
                raise entry
            try:
                result = await entry
            finally:
                slots.release()
            yield result
    finally:
        feeder.cancel()
        with contextlib.suppress(BaseException):
            await feeder
        while not queue.empty():
            entry = queue.get_nowait()
            if isinstance(entry, asyncio.Future):
                entry.cancel()
