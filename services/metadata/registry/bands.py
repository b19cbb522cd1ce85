"""Multi-index hashing: the perceptual hash split into bands, each indexed exactly.

Two hashes within Hamming distance d differ in at most d bits, spread over the bands; a
copy is a candidate when at least one of its bands is within `radius` bits of the stored
hash's band, found by probing every value within that radius. Candidates are then checked
on the full distance, so the index only decides recall and speed, never correctness.
The layout was chosen by measurement (docs/registry.md): recall >= 0.99 of transformed
copies with few bucket reads per search (the cost that dominates in Redis); candidates
(~2k at 1M images) are verified client-side with numpy.
"""

from __future__ import annotations

import dataclasses
import itertools
from functools import lru_cache


@dataclasses.dataclass(frozen=True)
class Layout:
    count: int  # bands
    width: int  # bits per band
    radius: int  # bits a band may differ and still be probed
    skip: int = 0  # leading hash bits left out of the bands (pHash's first bit is always 1)

    @property
    def probes(self) -> int:
        """Bucket keys read per search: every value within `radius` bits, per band."""
        return self.count * len(_flip_masks(self.width, self.radius))


# pHash 64: bit 0 (the DC term, always above the median) carries no information and is
# skipped; bits 1..60 form 4 bands of 15 bits, probed within radius 1: 4 x (1 + 15) = 64
# bucket reads per search. Measured (docs/registry.md) on the robustness copies: index
# recall 0.9949, end-to-end recall 0.9918 (target 0.99); at 1M images ~2k candidates per
# search, near-duplicate p50 1.5 ms. 5 x 12 / radius 1 finds every copy (recall 0.9969)
# but returns ~17k candidates per search (p50 5.2 ms at 1M); 4 x 16 / radius 2 (the old
# layout) needs 548 bucket reads, the cost that dominates in Redis.
LAYOUT = Layout(count=4, width=15, radius=1, skip=1)
# Layouts LAYOUT was measured against (bench_registry_robustness prints their recall).
ALTERNATIVES = (Layout(5, 12, 1, skip=1), Layout(4, 16, 2), Layout(4, 16, 1), Layout(5, 12, 0, skip=1))
# Hamming distance (bits of 64) at or below which two images are near duplicates.
THRESHOLD = 12


def split(hash_: bytes, layout: Layout = LAYOUT) -> list[int]:
    """The band values of a hash, most significant band first."""
    value = int.from_bytes(hash_, "big")
    total = len(hash_) * 8
    if layout.skip + layout.count * layout.width > total:
        raise ValueError(f"layout needs {layout.skip + layout.count * layout.width} bits, hash has {total}")
    mask = (1 << layout.width) - 1
    return [(value >> (total - layout.skip - (i + 1) * layout.width)) & mask for i in range(layout.count)]


@lru_cache(maxsize=8)
def _flip_masks(width: int, radius: int) -> tuple[int, ...]:
    masks = [0]
    for r in range(1, radius + 1):
        for bits in itertools.combinations(range(width), r):
            masks.append(sum(1 << b for b in bits))
    return tuple(masks)


def probes(value: int, layout: Layout = LAYOUT, radius: int | None = None) -> list[int]:
    """Every band value within `radius` (default layout.radius) bits of value (value itself first)."""
    return [value ^ m for m in _flip_masks(layout.width, layout.radius if radius is None else radius)]
