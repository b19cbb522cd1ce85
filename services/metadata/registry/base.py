"""The registry interface and the logic both backends share.

A backend only does the atomic part (look up every key, and when registering add the
image and its sighting in the same transaction) and returns raw ids and candidate hashes;
verifying near-duplicate distances, applying the retention TTL to sightings, ranking,
capping and turning matches into findings happen here, once, for both backends.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import struct
import time

import numpy as np

from services.metadata.fingerprints import Fingerprints
from services.metadata.registry import bands
from services.metadata.registry.model import Check, LookupResult, Match, MatchKind, Sighting, findings, rank
from services.metadata.reuse import descriptor
from services.metadata.reuse import verify as verification
from services.metadata.reuse import views as views_mod

DIGEST_BYTES = 16  # bytes of SHA-256 kept in the exact indexes: 128 bits, collision-free at any realistic size
ID_BYTES = 4  # bytes per image id in packed lists (4 billion images per registry)
_SEP = "\x1f"  # ASCII unit separator between the sighting's strings in a packed record


class RegistryUnavailable(Exception):
    """The store cannot be reached; the analysis answers without the registry part."""


@dataclasses.dataclass(frozen=True)
class Keys:
    """The lookup keys of one image, in the form the backends index."""

    sha: bytes  # DIGEST_BYTES of the file's SHA-256
    pixels: bytes  # DIGEST_BYTES of the pixel SHA-256
    unique_id: bytes  # DIGEST_BYTES of SHA-256(ImageUniqueID), b"" when absent
    perceptual: bytes  # the perceptual hash
    bands: tuple[int, ...]  # band values of `perceptual`
    # Near-copy keys (reuse/views.py). writes: (band, value, view hash) of every registered
    # view, the whole frame's bands first; probes: the distinct (band, value, radius) centres
    # of every probed variant, the upload as is first (radius 0 for the variants probed at
    # their exact band values, else the layout's). Both empty for an exact-only image.
    writes: tuple[tuple[int, int, bytes], ...] = ()
    probes: tuple[tuple[int, int, int], ...] = ()
    variants: tuple[bytes, ...] = ()  # the probed hashes, the upload as is first
    mirrored: tuple[int, ...] = ()  # indices of `variants` hashed from the mirrored upload
    descriptor: bytes = b""  # the verification record to store, b"" when none

    @classmethod
    def of(cls, fp: Fingerprints, layout: bands.Layout, register: bool = True) -> Keys:
        uid = hashlib.sha256(fp.image_unique_id.encode()).digest()[:DIGEST_BYTES] if fp.image_unique_id else b""
        content = fp.content
        views: tuple[tuple[int, bytes], ...]
        variants: tuple[tuple[bytes, tuple[int, ...]], ...]
        exact: tuple[int, ...] = ()
        mirrored: tuple[int, ...] = ()
        if content is None:  # fingerprints without content keys: the whole-frame hash only
            views, variants, record = ((0, fp.perceptual),), ((fp.perceptual, (0,)),), b""
        else:
            # The record only when registering: choosing its keypoints costs another ORB pass.
            views, variants, record = content.views, content.variants, content.record if register else b""
            exact = content.exact_variants
            mirrored = tuple(i for i in views_mod.MIRRORED_VARIANTS if i < len(variants))
        # A view's band b in namespace ns is indexed as band ns * count + b: namespace 0 is
        # the whole frame, exactly the bands of a registration made before views existed.
        # Namespaces other than the whole frame may index fewer bands (reuse/views.bands_of).
        n = layout.count
        writes = tuple(
            (ns * n + b, v, h)
            for ns, h in views
            for b, v in enumerate(bands.split(h, layout)[: views_mod.bands_of(ns, n)])
        )
        radius: dict[tuple[int, int], int] = {}  # a centre probed by several variants: the widest radius
        for i, (h, spaces) in enumerate(variants):
            r = 0 if i in exact else layout.radius
            for ns in spaces:
                for b, v in enumerate(bands.split(h, layout)[: views_mod.bands_of(ns, n)]):
                    radius[(ns * n + b, v)] = max(r, radius.get((ns * n + b, v), 0))
        probes = tuple((band, value, r) for (band, value), r in radius.items())
        return cls(
            fp.sha256[:DIGEST_BYTES],
            fp.pixel_sha256[:DIGEST_BYTES],
            uid,
            fp.perceptual,
            tuple(bands.split(fp.perceptual, layout)),
            writes,
            probes,
            tuple(h for h, _ in variants),
            mirrored,
            record,
        )

    @property
    def first_view_writes(self) -> int:
        """How many of `writes` belong to the whole-frame view (what a registration made
        before the other views existed wrote)."""
        return len(self.bands) if self.writes else 0


@dataclasses.dataclass
class Raw:
    """What a backend found, before verification."""

    sha_ids: list[int]
    pixel_ids: list[int]
    unique_id_ids: list[int]
    candidate_ids: np.ndarray  # uint32
    candidate_hashes: np.ndarray  # uint8, one row per candidate
    # Sightings read inside the atomic step (the same-bytes image's, before this one was
    # added), so concurrent registrations each see exactly those that committed before.
    snapshot: dict[int, list[Sighting]] = dataclasses.field(default_factory=dict)
    own_id: int = 0  # the image id this registration created or found (never its own candidate)
    direct: dict[int, int] = dataclasses.field(default_factory=dict)  # id -> whole frame to whole frame distance
    # ids within `threshold` of a mirrored variant: only these are verified against the
    # upload's mirror image (whose keypoints cost an ORB pass)
    mirrored: set[int] = dataclasses.field(default_factory=set)


def identity_digest(s: Sighting) -> bytes:
    return hashlib.blake2b(_SEP.join(s.identity).encode(), digest_size=8).digest()


def encode_sighting(s: Sighting) -> bytes:
    """identity digest (8) | seen_at seconds (uint32) | payload length (uint16) | payload."""
    payload = _SEP.join(part.replace(_SEP, " ") for part in s.identity).encode()[:65535]
    return identity_digest(s) + struct.pack(">IH", int(s.seen_at), len(payload)) + payload


def decode_sightings(blob: bytes) -> list[Sighting]:
    out, pos = [], 0
    while pos + 14 <= len(blob):
        seen_at, length = struct.unpack_from(">IH", blob, pos + 8)
        parts = blob[pos + 14 : pos + 14 + length].decode(errors="replace").split(_SEP)
        parts += [""] * (4 - len(parts))
        out.append(Sighting(*parts[:4], seen_at=float(seen_at)))
        pos += 14 + length
    return out


def unpack_ids(blob: bytes | None) -> list[int]:
    if not blob:
        return []
    return list(struct.unpack(f">{len(blob) // ID_BYTES}I", blob[: len(blob) // ID_BYTES * ID_BYTES]))


class Registry(abc.ABC):
    backend: str = ""

    def __init__(self, ttl_s: int = 0, threshold: int = bands.THRESHOLD, layout: bands.Layout = bands.LAYOUT) -> None:
        self.ttl_s = ttl_s
        self.threshold = threshold
        self.layout = layout

    # --- what a backend implements -------------------------------------------------------
    @abc.abstractmethod
    def _register_and_lookup(self, keys: Keys, sighting: Sighting, register: bool, now: float) -> Raw:
        """Atomically: every exact and banded lookup, and when `register` the image (new
        keys only) and the sighting (unless its identity is already there)."""

    @abc.abstractmethod
    def _sightings(self, ids: list[int]) -> dict[int, list[Sighting]]:
        """Stored sightings per image id (expired ones may still be included)."""

    @abc.abstractmethod
    def _descriptors(self, ids: list[int]) -> dict[int, bytes]:
        """Stored verification records per image id (b"" or absent: none stored)."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raises RegistryUnavailable when the store cannot be reached."""

    def close(self) -> None:
        """Releases connections."""

    # --- shared -----------------------------------------------------------------------------
    def lookup(self, fp: Fingerprints, sighting: Sighting, register: bool) -> LookupResult:
        now = time.time()
        if not sighting.seen_at:
            sighting = dataclasses.replace(sighting, seen_at=now)
        keys = Keys.of(fp, self.layout, register)
        try:
            raw = self._register_and_lookup(keys, sighting, register, now)
            kinds = self._classify(raw, keys)
            probe = fp.content.probe if fp.content is not None else None
            near = [i for i, (kind, _d) in kinds.items() if kind == MatchKind.NEAR_DUPLICATE] if probe else []
            rest = sorted(set(kinds) - set(raw.snapshot))
            records, found = self._details(near, rest)
            checks = self._verify(kinds, raw, probe, records)
            stored = {**found, **raw.snapshot}
        except RegistryUnavailable as exc:
            return LookupResult(self.backend, available=False, error=str(exc))
        oldest = now - self.ttl_s if self.ttl_s > 0 else float("-inf")
        matches = [
            Match(kind, s, distance, checks.get(image_id))
            for image_id, (kind, distance) in kinds.items()
            for s in stored.get(image_id, ())
            if s.seen_at >= oldest
        ]
        ranked = rank(matches, sighting)
        # Said when registering: what this registration protects against (exact copies only).
        exact_only = fp.content.exact_only if fp.content is not None and register else ""
        return LookupResult(
            self.backend,
            True,
            ranked,
            registered=register,
            findings=findings(ranked, sighting, fp.image_unique_id, exact_only),
        )

    def _classify(self, raw: Raw, keys: Keys) -> dict[int, tuple[MatchKind, int]]:
        """The strongest match kind per image id. Near-duplicate candidates: the smallest
        distance between any stored view and any probed variant within `threshold`; they are
        verified afterwards (_verify)."""
        kinds: dict[int, tuple[MatchKind, int]] = {}
        own = set(raw.sha_ids)
        if len(raw.candidate_ids) and keys.variants:
            # Byte-wise popcount of the XOR: ~10k candidates x a few variants verify in about a millisecond.
            variants = np.frombuffer(b"".join(keys.variants), np.uint8).reshape(len(keys.variants), -1)
            dist = np.bitwise_count(raw.candidate_hashes[:, None, :] ^ variants[None]).sum(axis=2, dtype=np.int32)
            best = dist.min(axis=1)
            near = best <= self.threshold
            for image_id, d in zip(raw.candidate_ids[near].tolist(), best[near].tolist()):
                if image_id in own or image_id == raw.own_id:
                    continue
                if image_id not in kinds or d < kinds[image_id][1]:
                    kinds[image_id] = (MatchKind.NEAR_DUPLICATE, int(d))
            # The upload's own whole frame against the stored whole frame: the only distance
            # that means what it meant before views existed (used for unverifiable candidates).
            raw.direct = {}
            for image_id, d in zip(raw.candidate_ids.tolist(), dist[:, 0].tolist()):
                if d < raw.direct.get(image_id, 1 << 30):
                    raw.direct[image_id] = int(d)
            if keys.mirrored:
                flipped = dist[:, list(keys.mirrored)].min(axis=1) <= self.threshold
                raw.mirrored = set(raw.candidate_ids[flipped].tolist())
        for ids, kind in (
            (raw.unique_id_ids, MatchKind.UNIQUE_ID),
            (raw.pixel_ids, MatchKind.SAME_PIXELS),
            (raw.sha_ids, MatchKind.SAME_BYTES),
        ):
            for image_id in ids:
                kinds[image_id] = (kind, 0)
        return kinds

    def _details(
        self, record_ids: list[int], sighting_ids: list[int]
    ) -> tuple[dict[int, bytes], dict[int, list[Sighting]]]:
        """The verification records and the sightings of these ids (the Redis backends read
        both in one round trip; sightings of candidates that fail verification go unused)."""
        return (
            self._descriptors(record_ids) if record_ids else {},
            self._sightings(sighting_ids) if sighting_ids else {},
        )

    def _verify(
        self,
        kinds: dict[int, tuple[MatchKind, int]],
        raw: Raw,
        probe: descriptor.Probe | None,
        records: dict[int, bytes],
    ) -> dict[int, Check]:
        """Checks every near-duplicate candidate against its stored descriptor. A verified
        copy stays; keypoints that agree without a copy's geometry make a `partial` match; a
        candidate whose descriptor is missing (registered before descriptors, or a
        fingerprint without content keys) is `unverifiable` and kept only when the upload's
        whole frame is within `threshold` of the stored whole frame; the rest are dropped
        (a hash collision)."""
        near = [i for i, (kind, _d) in kinds.items() if kind == MatchKind.NEAR_DUPLICATE]
        if not near:
            return {}
        checks: dict[int, Check] = {}
        described: dict[int, descriptor.Stored] = {}
        for image_id in near:
            stored = descriptor.decode(records.get(image_id)) if probe is not None else None
            if stored is not None:
                described[image_id] = stored
            elif raw.direct.get(image_id, 1 << 30) <= self.threshold:
                checks[image_id] = Check("unverifiable", None)
            else:
                del kinds[image_id]
        if described and probe is not None:
            results = verification.verify_all(
                list(described.values()), probe, [image_id in raw.mirrored for image_id in described]
            )
            for image_id, result in zip(described, results):
                if result.matched or result.partial:
                    checks[image_id] = Check("verified" if result.matched else "partial", result)
                else:
                    del kinds[image_id]
        return checks
