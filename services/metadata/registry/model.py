"""What the registry stores and answers: sightings, matches, and the findings they imply."""

from __future__ import annotations

import dataclasses
import datetime
import enum

from services.common.findings import Finding, Severity
from services.metadata.reuse.verify import Verification

MAX_MATCHES = 20  # matches returned per lookup: enough to judge reuse, bounded response size
SOURCE = "registry"  # Finding.source


class MatchKind(enum.IntEnum):
    # Values equal imagetrust.v1.MatchKind's, so conversion is a cast.
    UNIQUE_ID = 1
    SAME_BYTES = 2
    SAME_PIXELS = 3
    NEAR_DUPLICATE = 4


# Strongest evidence first: identical file, identical pixels, same camera ID, similar look.
_STRENGTH = {MatchKind.SAME_BYTES: 0, MatchKind.SAME_PIXELS: 1, MatchKind.UNIQUE_ID: 2, MatchKind.NEAR_DUPLICATE: 3}


@dataclasses.dataclass(frozen=True)
class Sighting:
    seller_id: str = ""
    listing_id: str = ""
    conversation_id: str = ""
    platform: str = ""
    seen_at: float = 0.0  # seconds since the Unix epoch (UTC)

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """Re-registering the same image under the same identity stores nothing new."""
        return (self.seller_id, self.listing_id, self.conversation_id, self.platform)


@dataclasses.dataclass(frozen=True)
class Check:
    """How a near-duplicate candidate was verified."""

    state: str  # "verified" (a copy), "partial" (shares part of the image), "unverifiable" (no descriptor stored)
    result: Verification | None  # None when unverifiable


@dataclasses.dataclass(frozen=True)
class Match:
    kind: MatchKind
    sighting: Sighting
    distance: int = 0  # Hamming distance of the perceptual hashes (NEAR_DUPLICATE only)
    check: Check | None = None  # NEAR_DUPLICATE only

    @property
    def confirmed(self) -> bool:
        """Evidence strong enough to call the upload a copy: an exact key, or a verified near copy."""
        return self.kind != MatchKind.NEAR_DUPLICATE or (self.check is not None and self.check.state == "verified")


@dataclasses.dataclass(frozen=True)
class LookupResult:
    backend: str
    available: bool = True
    matches: tuple[Match, ...] = ()
    registered: bool = False
    error: str = ""
    findings: tuple[Finding, ...] = ()


def _order(m: Match) -> tuple[int, int, int, float]:
    return (_STRENGTH[m.kind], 0 if m.confirmed else 1, m.distance, m.sighting.seen_at)


def rank(matches: list[Match], current: Sighting) -> tuple[Match, ...]:
    """Drops the current identity's own sightings, keeps each prior sighting once under its
    strongest kind, orders strongest then oldest, caps at MAX_MATCHES."""
    best: dict[tuple, Match] = {}
    for m in matches:
        if m.sighting.identity == current.identity:
            continue
        key = (*m.sighting.identity, m.sighting.seen_at)
        old = best.get(key)
        if old is None or _order(m)[:3] < _order(old)[:3]:
            best[key] = m
    ordered = sorted(best.values(), key=_order)
    return tuple(ordered[:MAX_MATCHES])


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="seconds")


def _copy_kind(m: Match) -> str:
    """What kind of copy, in words a reviewer reads: exact bytes, same pixels, same camera
    ID, or for a verified near copy scaled/re-encoded, cropped, mirrored, bordered, overlaid."""
    if m.kind != MatchKind.NEAR_DUPLICATE:
        return {
            MatchKind.SAME_BYTES: "exact bytes",
            MatchKind.SAME_PIXELS: "same pixels",
            MatchKind.UNIQUE_ID: "same camera image id",
        }[m.kind]
    if m.check is None or m.check.result is None:
        return "similar (unverified)"
    if m.check.state == "partial":
        return "shares part of the image"
    kinds = m.check.result.kinds
    return ", ".join(kinds) if kinds else "scaled or re-encoded"


def _evidence(m: Match, count: int) -> dict[str, str]:
    ev = {
        "match_kind": m.kind.name,
        "prior_seller_id": m.sighting.seller_id,
        "prior_listing_id": m.sighting.listing_id,
        "prior_platform": m.sighting.platform,
        "first_seen": _iso(m.sighting.seen_at),
        "sightings": str(count),
        "copy_kind": _copy_kind(m),
    }
    if m.kind == MatchKind.NEAR_DUPLICATE:
        ev["distance"] = str(m.distance)
        if m.check is not None:
            ev["verification"] = m.check.state
            r = m.check.result
            if r is not None:
                ev.update(
                    verification_score=f"{r.score:.2f}",
                    verification_inliers=str(r.inliers),
                    kept_fraction=f"{r.kept:.2f}",
                    inside_fraction=f"{r.inside:.2f}",
                )
    return ev


def _strongest(matches: list[Match]) -> Match:
    return min(matches, key=lambda m: (_STRENGTH[m.kind], not m.confirmed, m.sighting.seen_at))


def findings(
    matches: tuple[Match, ...], current: Sighting, unique_id: str, exact_only: str = ""
) -> tuple[Finding, ...]:
    """REUSED_BY_OTHER_SELLER (HIGH, exact keys or a verified copy only),
    SIMILAR_TO_OTHER_SELLER (MEDIUM: shares part of another seller's image; LOW: similar by
    hash, not verifiable), REUSED_SAME_SELLER (LOW, a relisting), IMAGE_ID_REUSED (MEDIUM)
    and REUSE_EXACT_ONLY (INFO, when registering an image too flat or small to match on content).
    Evidence names the strongest, earliest prior sighting.

    The same seller showing the same listing again (for example the listing photo sent in
    its chat) is not reuse and yields no finding."""
    other = [m for m in matches if m.sighting.seller_id != current.seller_id]
    copied = [m for m in other if m.confirmed]
    relist = [
        m
        for m in matches
        if m.sighting.seller_id == current.seller_id
        and m.sighting.listing_id != current.listing_id
        and (m.confirmed or (m.check is not None and m.check.state == "unverifiable"))
    ]
    out: list[Finding] = []
    if copied:
        first = _strongest(copied)
        sellers = len({m.sighting.seller_id for m in copied})
        out.append(
            Finding(
                "REUSED_BY_OTHER_SELLER",
                Severity.HIGH,
                f"this photo was already registered by {sellers} other seller(s) ({_copy_kind(first)})",
                {**_evidence(first, len(copied)), "other_sellers": str(sellers)},
                SOURCE,
            )
        )
    elif other:
        first = _strongest(other)
        partial = first.check is not None and first.check.state == "partial"
        sellers = len({m.sighting.seller_id for m in other})
        out.append(
            Finding(
                "SIMILAR_TO_OTHER_SELLER",
                Severity.MEDIUM if partial else Severity.LOW,
                "this photo shares part of an image another seller registered (not a verified copy)"
                if partial
                else "this photo looks similar to an image another seller registered (not verifiable: that image has no "
                "verification descriptor)",
                {**_evidence(first, len(other)), "other_sellers": str(sellers)},
                SOURCE,
            )
        )
    if relist:
        first = _strongest(relist)
        out.append(
            Finding(
                "REUSED_SAME_SELLER",
                Severity.LOW,
                "the same seller used this photo in another listing (a relisting)",
                _evidence(first, len(relist)),
                SOURCE,
            )
        )
    by_id = [
        m
        for m in matches
        if unique_id
        and m.kind in (MatchKind.UNIQUE_ID, MatchKind.SAME_BYTES, MatchKind.SAME_PIXELS)
        and m.sighting.listing_id != current.listing_id
    ]
    if by_id:
        first = min(by_id, key=lambda m: m.sighting.seen_at)
        out.append(
            Finding(
                "IMAGE_ID_REUSED",
                Severity.MEDIUM,
                "the EXIF ImageUniqueID of this photo is already registered in another deal",
                {**_evidence(first, len(by_id)), "image_unique_id": unique_id},
                SOURCE,
            )
        )
    if exact_only:
        out.append(
            Finding(
                "REUSE_EXACT_ONLY",
                Severity.INFO,
                f"this image is {exact_only}: only exact copies of it (same bytes, same pixels) are matched",
                {"reason": exact_only},
                SOURCE,
            )
        )
    return tuple(out)
