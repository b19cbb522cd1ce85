"""The content keys of one decoded image: what near-copy matching indexes, stores and probes.

`describe` takes the displayed image (a uint8 numpy array, RGB or grey, already decoded)
and returns the pHash views a registration indexes, the variants a lookup probes, the
stored verification record, and the query-side probe; or, for an image too flat or small
to match on content, says so (it then only matches exactly).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from services.metadata.reuse import descriptor, views
from services.metadata.reuse.descriptor import Probe


@dataclasses.dataclass(frozen=True, eq=False)
class ContentKeys:
    views: tuple[tuple[int, bytes], ...]  # (namespace, pHash) a registration indexes; () when exact_only
    variants: tuple[tuple[bytes, tuple[int, ...]], ...]  # (pHash, namespaces) a lookup probes; () when exact_only
    descriptor: bytes | None  # descriptor.RECORD_BYTES; None: made from the probe when first needed
    exact_only: str  # why only exact copies can match this image ("" = matched on content)
    probe: Probe | None  # the upload's features (memory only), None when exact_only
    # indices of `variants` probed at radius 0 (their exact band values; views.EXACT_VARIANTS)
    exact_variants: tuple[int, ...] = ()

    @functools.cached_property
    def record(self) -> bytes:
        """The verification record to store (b"" for an exact-only image): computed only when
        registering, as choosing stable keypoints costs another ORB pass."""
        if self.descriptor is not None:
            return self.descriptor
        if self.probe is None:
            return b""
        features = self.probe.features
        return descriptor.encode(
            features, descriptor.stable(self.probe.gray, features), descriptor.textured(self.probe.gray, features)
        )


def describe(pixels: np.ndarray) -> ContentKeys:
    probe = descriptor.probe(pixels)
    reason = descriptor.exact_only_reason(pixels, probe.gray, probe.features)
    if reason:
        return ContentKeys((), (), b"", reason, None)
    content = descriptor.border_box(pixels) if probe.bordered else None
    variants = views.query(pixels, content)
    exact = tuple(i for i in views.EXACT_VARIANTS if i < len(variants))
    return ContentKeys(views.registered(pixels), variants, None, "", probe, exact)
