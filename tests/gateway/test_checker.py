"""_gather_or_first_error: the backend fan-out's error handling.

Found by the fuzz sweep through a real gateway: an image both backends refuse
(INVALID_ARGUMENT from each within a millisecond) made the gateway log "Task exception was
never retrieved" with a traceback for ~1 upload in 8 on a busy machine. Which loop iteration
the two answers land in cannot be forced through real sockets, so this drives the helper
directly with two calls that fail in the same iteration, every time.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from services.common.errors import InvalidImage
from services.gateway.checker import _gather_or_first_error


async def _refuse(name: str):
    raise InvalidImage(f"{name}: cannot decode the jpeg image (truncated or corrupt?)")


def test_both_backends_refusing_at_once_raises_one_error_and_leaves_none_unretrieved():
    unhandled: list[dict] = []

    async def run() -> str:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: unhandled.append(context))
        try:
            await _gather_or_first_error({"synthesis": _refuse("synthesis"), "metadata": _refuse("metadata")})
        except InvalidImage as exc:
            message = exc.message
        gc.collect()  # an unretrieved task exception is reported when the task is collected
        await asyncio.sleep(0)
        return message

    assert asyncio.run(run()).endswith("cannot decode the jpeg image (truncated or corrupt?)")
    assert not unhandled, [c.get("message") for c in unhandled]


def test_an_error_cancels_the_call_still_running():
    async def slow(state: dict):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    async def run() -> dict:
        state: dict = {}
        with pytest.raises(InvalidImage):
            await _gather_or_first_error({"synthesis": slow(state), "metadata": _refuse("metadata")})
        await asyncio.sleep(0)
        return state

    assert asyncio.run(run()) == {"cancelled": True}  # cut, not awaited for 30 s
