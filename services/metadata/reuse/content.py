"""The content keys of one decoded image: what near-copy matching indexes, stores and probes.

`describe` takes the displayed image (a uint8 numpy array, RGB or grey, already decoded)
and returns the pHash views a registration indexes, the variants a lookup probes, the
stored verification record, and the query-side probe; or, for an image too flat or small
to match on content, says so (it then only matches exactly).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from services.metadata.reuse import descriptor, views
from services.metadata.reuse.descriptor import Probe


@dataclasses.dataclass(frozen=True, eq=False)
class ContentKeys:
    views: tuple[tuple[int, bytes], ...]  # (namespace, pHash) a registration indexes; () when exact_only
    variants: tuple[tuple[bytes, tuple[int, ...]], ...]  # (pHash, namespaces) a lookup probes; () when exact_only
    descriptor: bytes  # descriptor.RECORD_BYTES, b"" when exact_only
    exact_only: str  # why only exact copies can match this image ("" = matched on content)
    probe: Probe | None  # the upload's features (memory only), None when exact_only


def describe(pixels: np.ndarray) -> ContentKeys:
    probe = descriptor.probe(pixels)
    reason = descriptor.exact_only_reason(pixels, probe.gray, probe.features)
    if reason:
        return ContentKeys((), (), b"", reason, None)
    content = descriptor.border_box(pixels) if probe.bordered else None
    record = descriptor.encode(
        probe.features, descriptor.stable(probe.gray, probe.features), descriptor.textured(probe.gray, probe.features)
    )
    return ContentKeys(views.registered(pixels), views.query(pixels, content), record, "", probe)
