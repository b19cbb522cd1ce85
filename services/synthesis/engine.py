"""Synthesis scoring engine.

PLACEHOLDER: until the trained model lands (issues 5 and 6) this engine only decodes and
validates the image and answers score 0 with `placeholder` set, so the plumbing (limits,
errors, health, metrics, shutdown) can be built and tested end to end.
"""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor

from services.common.config import SynthesisConfig
from services.common.imaging import decode_rgb
from services.common.limits import check_bytes


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
    tile_size: int = 0


class PlaceholderEngine:
    """Decodes off the event loop and returns a labelled non-score."""

    def __init__(self, config: SynthesisConfig) -> None:
        self.config = config
        self._pool = ThreadPoolExecutor(max_workers=config.decode_workers, thread_name_prefix="decode")

    async def load(self) -> None:
        return None

    async def detect(self, data: bytes, want_heatmap: bool = False) -> Detection:
        check_bytes(data, self.config.max_message_bytes)
        loop = asyncio.get_running_loop()
        img = await loop.run_in_executor(self._pool, decode_rgb, data, self.config.max_pixels)
        return Detection(
            score=0.0, global_score=0.0, local_score=0.0, width=img.width, height=img.height,
            model_version="placeholder-0", model_arch="none", preprocessing="none",
            device="cpu", placeholder=True,
        )

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
