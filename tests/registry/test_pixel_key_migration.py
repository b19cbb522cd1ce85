"""Moving a registry from the SHA-256 pixel key to the BLAKE3 one: images registered under
the old key still match as SAME_PIXELS while the server looks the old key up too
(IMAGETRUST_LEGACY_PIXEL_KEY), and only as near duplicates once it stops."""

from __future__ import annotations

import dataclasses

from services.metadata import fingerprints
from services.metadata.registry import check
from services.metadata.registry.model import MatchKind, Sighting
from services.metadata.registry.sqlite_backend import SqliteRegistry

MAX_PIXELS = 120_000_000  # pixels


def _strip_app1(data: bytes) -> bytes:
    out, pos = bytearray(data[:2]), 2
    while data[pos] == 0xFF and data[pos + 1] != 0xDA:
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if data[pos + 1] != 0xE1:
            out += data[pos : pos + 2 + length]
        pos += 2 + length
    return bytes(out + data[pos:])


def _kinds(rc: check.RegistryCheck) -> set[MatchKind]:
    return {m.kind for m in rc.result.matches}


def test_images_registered_under_the_sha256_key_match_during_the_migration(exif_samples, tmp_path):
    original = (exif_samples / "jpg" / "Canon_40D.jpg").read_bytes()
    stripped = _strip_app1(original)  # a metadata-only edit: other bytes, the same pixels
    registry = SqliteRegistry(tmp_path / "registry.sqlite3")
    try:
        # What a server before the BLAKE3 key registered: the SHA-256 RGB8 key in the pixel index.
        old = fingerprints.compute(original, MAX_PIXELS, legacy=True)
        registry.lookup(
            dataclasses.replace(old, pixel_sha256=old.legacy_pixel_sha256),
            Sighting("seller-a", "listing-1", seen_at=1_000.0),
            register=True,
        )

        without = check.run(stripped, Sighting("seller-b", "listing-2"), False, registry, MAX_PIXELS)
        assert MatchKind.SAME_PIXELS not in _kinds(without)
        assert MatchKind.NEAR_DUPLICATE in _kinds(without)  # still found, by its look

        during = check.run(
            stripped, Sighting("seller-b", "listing-2"), True, registry, MAX_PIXELS, legacy_pixel_key=True
        )
        assert during.fingerprints.legacy_pixel_sha256 == old.legacy_pixel_sha256
        assert MatchKind.SAME_PIXELS in _kinds(during)
        assert [f.code for f in during.result.findings] == ["REUSED_BY_OTHER_SELLER"]
        assert during.result.findings[0].evidence["match_kind"] == "SAME_PIXELS"

        # seller-b's copy was registered under the BLAKE3 key: a third copy matches it exactly
        # without the migration lookup.
        again = _strip_app1(original) + b"\x00"  # other bytes again (after EOI), same pixels
        after = check.run(again, Sighting("seller-c", "listing-3"), False, registry, MAX_PIXELS)
        same = [m for m in after.result.matches if m.kind == MatchKind.SAME_PIXELS]
        assert [m.sighting.seller_id for m in same] == ["seller-b"]
    finally:
        registry.close()
