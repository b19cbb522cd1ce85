"""What the registry stores and answers: sightings, matches, and the findings they imply."""

from __future__ import annotations

import dataclasses
import datetime
import enum

from services.common.findings import Finding, Severity

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
class Match:
    kind: MatchKind
    sighting: Sighting
    distance: int = 0  # Hamming distance of the perceptual hashes (NEAR_DUPLICATE only)


@dataclasses.dataclass(frozen=True)
class LookupResult:
    backend: str
    available: bool = True
    matches: tuple[Match, ...] = ()
    registered: bool = False
    error: str = ""
    findings: tuple[Finding, ...] = ()


def rank(matches: list[Match], current: Sighting) -> tuple[Match, ...]:
    """Drops the current identity's own sightings, keeps each prior sighting once under its
    strongest kind, orders strongest then oldest, caps at MAX_MATCHES."""
    best: dict[tuple, Match] = {}
    for m in matches:
        if m.sighting.identity == current.identity:
            continue
        key = (*m.sighting.identity, m.sighting.seen_at)
        old = best.get(key)
        if old is None or (_STRENGTH[m.kind], m.distance) < (_STRENGTH[old.kind], old.distance):
            best[key] = m
    ordered = sorted(best.values(), key=lambda m: (_STRENGTH[m.kind], m.distance, m.sighting.seen_at))
    return tuple(ordered[:MAX_MATCHES])


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="seconds")


def _evidence(m: Match, count: int) -> dict[str, str]:
    ev = {
        "match_kind": m.kind.name, "prior_seller_id": m.sighting.seller_id,
        "prior_listing_id": m.sighting.listing_id, "prior_platform": m.sighting.platform,
        "first_seen": _iso(m.sighting.seen_at), "sightings": str(count),
    }
    if m.kind == MatchKind.NEAR_DUPLICATE:
        ev["distance"] = str(m.distance)
    return ev


def findings(matches: tuple[Match, ...], current: Sighting, unique_id: str) -> tuple[Finding, ...]:
    """REUSED_BY_OTHER_SELLER (HIGH), REUSED_SAME_SELLER (LOW, a relisting) and
    IMAGE_ID_REUSED (MEDIUM). Evidence names the strongest, earliest prior sighting.

    The same seller showing the same listing again (for example the listing photo sent in
    its chat) is not reuse and yields no finding."""
    other = [m for m in matches if m.sighting.seller_id != current.seller_id]
    relist = [
        m for m in matches
        if m.sighting.seller_id == current.seller_id and m.sighting.listing_id != current.listing_id
    ]
    out: list[Finding] = []
    if other:
        first = min(other, key=lambda m: (_STRENGTH[m.kind], m.sighting.seen_at))
        sellers = len({m.sighting.seller_id for m in other})
        out.append(Finding(
            "REUSED_BY_OTHER_SELLER", Severity.HIGH,
            f"this photo was already registered by {sellers} other seller(s) "
            f"({first.kind.name.lower().replace('_', ' ')})",
            {**_evidence(first, len(other)), "other_sellers": str(sellers)}, SOURCE,
        ))
    if relist:
        first = min(relist, key=lambda m: (_STRENGTH[m.kind], m.sighting.seen_at))
        out.append(Finding(
            "REUSED_SAME_SELLER", Severity.LOW,
            "the same seller used this photo in another listing (a relisting)",
            _evidence(first, len(relist)), SOURCE,
        ))
    by_id = [
        m for m in matches
        if unique_id and m.kind in (MatchKind.UNIQUE_ID, MatchKind.SAME_BYTES, MatchKind.SAME_PIXELS)
        and m.sighting.listing_id != current.listing_id
    ]
    if by_id:
        first = min(by_id, key=lambda m: m.sighting.seen_at)
        out.append(Finding(
            "IMAGE_ID_REUSED", Severity.MEDIUM,
            "the EXIF ImageUniqueID of this photo is already registered in another deal",
            {**_evidence(first, len(by_id)), "image_unique_id": unique_id}, SOURCE,
        ))
    return tuple(out)
