"""Multi-index hashing: the perceptual hash split into bands, each indexed exactly.

Two hashes within Hamming distance d differ in at most d bits, spread over the bands; a
copy is a candidate when at least one of its bands is within `radius` bits of the stored
hash's band, found by probing every value within that radius. Candidates are then checked
on the full distance, so the index only decides recall and speed, never correctness.
The layout was chosen by measurement (docs/registry.md): it finds every transformed copy
within THRESHOLD in the robustness bench, and keeps buckets large enough for compact
Redis sets yet small enough that a search verifies a few hundred candidates at 1M images.
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

    @property
    def probes(self) -> int:
        """Bucket keys read per search: every value within `radius` bits, per band."""
        return self.count * len(_flip_masks(self.width, self.radius))


# pHash 64: 4 bands of 16 bits; radius 2 means 1 + 16 + 120 = 137 probes per band, 548
# per search. A copy within THRESHOLD has at most 3 flips in its best band (pigeonhole), so
# radius 2 is not a guarantee: its recall is measured in the robustness bench.
LAYOUT = Layout(count=4, width=16, radius=2)
# Layouts measured against LAYOUT (bench_registry_robustness, bench_registry_scale).
ALTERNATIVES = (Layout(4, 16, 0), Layout(4, 16, 1), Layout(4, 16, 2))
# Hamming distance (bits of 64) at or below which two images are near duplicates.
THRESHOLD = 12


def split(hash_: bytes, layout: Layout = LAYOUT) -> list[int]:
    """The band values of a hash, most significant band first."""
    value = int.from_bytes(hash_, "big")
    total = len(hash_) * 8
    if layout.count * layout.width > total:
        raise ValueError(f"layout needs {layout.count * layout.width} bits, hash has {total}")
    mask = (1 << layout.width) - 1
    return [(value >> (total - (i + 1) * layout.width)) & mask for i in range(layout.count)]


@lru_cache(maxsize=8)
def _flip_masks(width: int, radius: int) -> tuple[int, ...]:
    masks = [0]
    for r in range(1, radius + 1):
        for bits in itertools.combinations(range(width), r):
            masks.append(sum(1 << b for b in bits))
    return tuple(masks)


def probes(value: int, layout: Layout = LAYOUT) -> list[int]:
    """Every band value within layout.radius bits of value (value itself first)."""
    return [value ^ m for m in _flip_masks(layout.width, layout.radius)]
