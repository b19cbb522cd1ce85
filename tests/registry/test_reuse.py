"""Near-copy matching on real photos, every backend: thieves' edits are verified copies,
distinct photos and flat images are not, and registrations without descriptors keep working."""

from __future__ import annotations

import dataclasses
import io
import sqlite3

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from services.metadata import fingerprints
from services.metadata.fingerprints import Fingerprints
from services.metadata.registry import bands
from services.metadata.registry.base import Keys
from services.metadata.registry.model import Sighting
from services.metadata.registry.sqlite_backend import SqliteRegistry
from services.metadata.reuse import descriptor, verify, views
from tests.helpers.paths import BSDS, require_dataset

MAX_PIXELS = 120_000_000  # pixels


def _jpeg(img: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _photo(name: str) -> Image.Image:
    return Image.open(require_dataset(BSDS) / "train" / "images" / name).convert("RGB")


def _copies(img: Image.Image) -> dict[str, Image.Image]:
    w, h = img.size
    bordered = Image.new("RGB", (w + 120, h + 80), (255, 255, 255))
    bordered.paste(img, (70, 30))
    banner = img.copy()
    ImageDraw.Draw(banner).rectangle((0, round(h * 0.85), w, h), fill=(220, 20, 60))
    return {
        "scaled": img.resize((w * 2 // 3, h * 2 // 3), Image.Resampling.LANCZOS),
        "mirrored": img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "cropped": img.crop((round(w * 0.06), round(h * 0.05), w - round(w * 0.04), h - round(h * 0.07))),
        "bordered": bordered,
        "overlaid": banner,
    }


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    """One registered photo, its copies, a distinct photo, two flat images (computed once)."""
    original = _photo("100075.jpg")
    out = {"original": _jpeg(original, 92), "distinct": _jpeg(_photo("35008.jpg"))}
    out.update({name: _jpeg(img, 75) for name, img in _copies(original).items()})
    rng = np.random.default_rng(1)
    for name, colour in (("flat", 200), ("flat2", 60)):
        arr = np.clip(np.full((300, 400, 3), colour, np.float32) + rng.normal(0, 1, (300, 400, 3)), 0, 255)
        out[name] = _jpeg(Image.fromarray(arr.astype(np.uint8)))
    return out


@pytest.fixture(scope="module")
def fps(photos) -> dict[str, Fingerprints]:
    return {name: fingerprints.compute(data, MAX_PIXELS) for name, data in photos.items()}


def _codes(result) -> dict[str, object]:
    return {f.code: f for f in result.findings}


def test_thieves_edits_are_verified_copies_and_a_distinct_photo_is_not(open_registry, fps):
    reg = open_registry()
    assert reg.lookup(fps["original"], Sighting("alice", "a-1"), register=True).findings == ()
    for name in ("scaled", "mirrored", "cropped", "bordered", "overlaid"):
        result = reg.lookup(fps[name], Sighting("mallory", f"m-{name}"), register=False)
        finding = _codes(result).get("REUSED_BY_OTHER_SELLER")
        assert finding is not None, (name, result.findings)
        assert int(finding.severity) == 4 and finding.evidence["prior_seller_id"] == "alice"
        assert finding.evidence["verification"] == "verified"
        assert int(finding.evidence["verification_inliers"]) >= verify.MIN_INLIERS[descriptor.STORED_KEYPOINTS]
        assert float(finding.evidence["verification_score"]) >= verify.MIN_SCORE
        if name != "scaled":  # the evidence says what kind of copy it is
            assert name in finding.evidence["copy_kind"], (name, finding.evidence)
    kept = _codes(reg.lookup(fps["cropped"], Sighting("mallory", "m-c"), register=False))["REUSED_BY_OTHER_SELLER"]
    assert 0.75 < float(kept.evidence["kept_fraction"]) < 0.95
    assert reg.lookup(fps["distinct"], Sighting("bob", "b-1"), register=False).findings == ()


def test_flat_images_match_only_exactly_and_say_so(open_registry, fps, photos):
    reg = open_registry()
    flat = fps["flat"]
    assert flat.content is not None and flat.content.exact_only and flat.content.views == ()
    first = reg.lookup(flat, Sighting("alice", "a-1"), register=True)
    assert [f.code for f in first.findings] == ["REUSE_EXACT_ONLY"]
    assert int(first.findings[0].severity) == 1 and "flat" in first.findings[0].evidence["reason"]
    again = _codes(reg.lookup(flat, Sighting("bob", "b-1"), register=False))
    assert again["REUSED_BY_OTHER_SELLER"].evidence["copy_kind"] == "exact bytes"
    assert "REUSE_EXACT_ONLY" not in again  # said when registering, not on every lookup
    # Another plain image: its whole-frame pHash may well be close, but it never matches.
    assert reg.lookup(fps["flat2"], Sighting("bob", "b-2"), register=False).findings == ()


def test_registrations_without_descriptors_are_unverifiable_until_seen_again(open_registry, fps):
    """A registration made before descriptors (fingerprints without content keys) yields only
    the lower-severity SIMILAR_TO_OTHER_SELLER; the next registration of the same file
    stores its descriptor and views, and copies then verify."""
    reg = open_registry()
    full = fps["original"]
    legacy = Fingerprints(sha256=full.sha256, pixel_sha256=full.pixel_sha256, perceptual=full.perceptual)
    reg.lookup(legacy, Sighting("alice", "a-1"), register=True)
    before = _codes(reg.lookup(fps["scaled"], Sighting("mallory", "m-1"), register=False))
    assert "REUSED_BY_OTHER_SELLER" not in before
    similar = before["SIMILAR_TO_OTHER_SELLER"]
    assert int(similar.severity) == 2 and similar.evidence["verification"] == "unverifiable"
    # A mirrored copy is far from the legacy whole-frame hash: nothing at all, as before.
    assert reg.lookup(fps["mirrored"], Sighting("mallory", "m-2"), register=False).findings == ()
    # The same file registered again (a relisting) re-fingerprints it.
    relisted = _codes(reg.lookup(full, Sighting("alice", "a-2"), register=True))
    assert set(relisted) == {"REUSED_SAME_SELLER"}
    for name in ("scaled", "mirrored"):
        after = _codes(reg.lookup(fps[name], Sighting("mallory", f"m-{name}"), register=False))
        assert after["REUSED_BY_OTHER_SELLER"].evidence["verification"] == "verified", name


def test_a_crop_cut_off_one_corner_is_found_through_the_corner_windows(open_registry, fps):
    """12 % off the left and 10 % off the bottom: the whole, centre and middle-band hashes of
    the crop are all beyond the threshold, the top-right 93 % window is close."""
    img = _photo("100075.jpg")
    w, h = img.size
    crop = fingerprints.compute(_jpeg(img.crop((round(w * 0.12), 0, w, h - round(h * 0.1))), 75), MAX_PIXELS)
    registered = fps["original"].content
    assert registered is not None and crop.content is not None
    distances = {ns: fingerprints.hamming(crop.content.variants[0][0], view) for ns, view in registered.views}
    assert min(distances[ns] for ns in (views.NS_WHOLE, views.NS_CENTRE, views.NS_MIDDLE)) > bands.THRESHOLD
    corner = [
        fingerprints.hamming(crop.content.variants[0][0], v) for ns, v in registered.views if ns == views.NS_CORNER
    ]
    assert len(corner) == 4 and min(corner) <= bands.THRESHOLD // 2
    reg = open_registry()
    reg.lookup(fps["original"], Sighting("alice", "a-1"), register=True)
    finding = _codes(reg.lookup(crop, Sighting("mallory", "m-1"), register=False))["REUSED_BY_OTHER_SELLER"]
    assert finding.evidence["prior_seller_id"] == "alice" and "cropped" in finding.evidence["copy_kind"]


def test_mirrored_variants_probe_their_exact_band_values(fps):
    """A lookup reads 238 band buckets (384 before the per-variant radius): the upload as is
    and its middle band within one bit per band, the mirrored variants at their exact values."""
    keys = Keys.of(fps["mirrored"], bands.LAYOUT, register=False)
    assert {r for _b, _v, r in keys.probes} == {0, bands.LAYOUT.radius}
    assert sum(len(bands.probes(v, bands.LAYOUT, r)) for _b, v, r in keys.probes) == 238


def test_the_mirror_image_is_described_only_for_candidates_a_mirrored_variant_proposed(open_registry, photos):
    """The mirror image's ORB pass is the costliest part of verifying: a scaled copy (proposed
    by the upload as is) is verified without it, a mirrored copy (proposed by a mirrored
    variant) with it; a record verified without the mirror pass does not match a mirrored copy."""
    reg = open_registry()
    reg.lookup(fingerprints.compute(photos["original"], MAX_PIXELS), Sighting("alice", "a-1"), register=True)
    scaled = fingerprints.compute(photos["scaled"], MAX_PIXELS)  # fresh: nothing cached on its probe
    assert "REUSED_BY_OTHER_SELLER" in _codes(reg.lookup(scaled, Sighting("mallory", "m-1"), register=False))
    assert "mirrored" not in scaled.content.probe.__dict__  # type: ignore[union-attr]
    mirrored = fingerprints.compute(photos["mirrored"], MAX_PIXELS)
    finding = _codes(reg.lookup(mirrored, Sighting("mallory", "m-2"), register=False))["REUSED_BY_OTHER_SELLER"]
    assert "mirrored" in finding.evidence["copy_kind"] and "mirrored" in mirrored.content.probe.__dict__  # type: ignore[union-attr]
    stored = descriptor.decode(fingerprints.compute(photos["original"], MAX_PIXELS).content.record)  # type: ignore[union-attr]
    fresh = fingerprints.compute(photos["mirrored"], MAX_PIXELS).content.probe  # type: ignore[union-attr]
    assert not verify.verify_all([stored], fresh, [False])[0].matched  # type: ignore[list-item]
    assert verify.verify_all([stored], fresh, [True])[0].matched  # type: ignore[list-item]


def test_registrations_with_the_three_views_of_before_still_match(open_registry, fps):
    """An image registered before the corner windows (whole, centre and middle-band views
    and a record, no corner bands) keeps matching and verifying as it did: nothing migrates."""
    reg = open_registry()
    full = fps["original"]
    assert full.content is not None
    before = dataclasses.replace(full.content, views=full.content.views[:3])
    assert {ns for ns, _h in before.views} == {views.NS_WHOLE, views.NS_CENTRE, views.NS_MIDDLE}
    before.__dict__["record"] = full.content.record  # cached_property: the same stored record
    reg.lookup(dataclasses.replace(full, content=before), Sighting("alice", "a-1"), register=True)
    for name in ("scaled", "mirrored", "cropped", "bordered", "overlaid"):
        finding = _codes(reg.lookup(fps[name], Sighting("mallory", f"m-{name}"), register=False)).get(
            "REUSED_BY_OTHER_SELLER"
        )
        assert finding is not None and finding.evidence["verification"] == "verified", name


def test_a_product_shot_on_white_pasted_on_more_white_verifies_and_another_product_does_not(open_registry):
    """Trimming cannot separate a white canvas from a product shot's own white surround; the
    rest of the upload is accepted as a plain canvas only with strong keypoint evidence."""

    def product(name: str, box: tuple[int, int, int, int]) -> Image.Image:
        patch = _photo(name).crop(box)
        canvas = Image.new("RGB", (900, 900), (255, 255, 255))
        shadow = Image.new("RGB", patch.size, (200, 200, 200))
        canvas.paste(shadow, (312, 272))
        canvas = canvas.filter(ImageFilter.GaussianBlur(6))
        canvas.paste(patch, (300, 260))
        return canvas

    shot = product("100075.jpg", (100, 60, 340, 260))
    padded = Image.new("RGB", (1300, 1100), (250, 250, 250))
    padded.paste(shot, (260, 90))
    reg = open_registry()
    reg.lookup(fingerprints.compute(_jpeg(shot, 92), MAX_PIXELS), Sighting("alice", "a-1"), register=True)
    copy = fingerprints.compute(_jpeg(padded.resize((650, 550), Image.Resampling.LANCZOS), 75), MAX_PIXELS)
    finding = _codes(reg.lookup(copy, Sighting("mallory", "m-1"), register=False))["REUSED_BY_OTHER_SELLER"]
    assert "bordered" in finding.evidence["copy_kind"]
    other = fingerprints.compute(_jpeg(product("35008.jpg", (100, 60, 340, 260)), 85), MAX_PIXELS)
    assert "REUSED_BY_OTHER_SELLER" not in _codes(reg.lookup(other, Sighting("bob", "b-1"), register=False))


def _soft_product(name: str) -> Image.Image:
    """A blurred photo patch (little texture of its own) on white with a soft shadow: its
    textured keypoints sit on the outline, which every such product shot shares."""
    patch = _photo(name).crop((60, 60, 300, 220)).filter(ImageFilter.GaussianBlur(4))
    canvas = Image.new("RGB", (900, 900), (255, 255, 255))
    canvas.paste(Image.new("RGB", patch.size, (200, 200, 200)), (312, 272))
    canvas = canvas.filter(ImageFilter.GaussianBlur(6))
    canvas.paste(patch, (300, 260))
    return canvas


def test_keypoints_agreeing_at_a_few_outline_corners_are_no_copy(open_registry, monkeypatch):
    """Two different soft products on white: their outline corners (each found at several
    pyramid levels) agree with 10 inliers at fewer than MIN_PLACES distinct places, which
    verified before that rule and accused the seller; now it is no match at all."""
    registered = fingerprints.compute(_jpeg(_soft_product("100098.jpg"), 90), MAX_PIXELS)
    other = fingerprints.compute(_jpeg(_soft_product("106025.jpg"), 90), MAX_PIXELS)
    stored = descriptor.decode(registered.content.record)  # type: ignore[union-attr]
    assert stored is not None
    assert not verify.verify(stored, other.content.probe).matched  # type: ignore[union-attr]
    reg = open_registry()
    reg.lookup(registered, Sighting("alice", "a-1"), register=True)
    assert "REUSED_BY_OTHER_SELLER" not in _codes(reg.lookup(other, Sighting("bob", "b-1"), register=False))
    monkeypatch.setattr(verify, "MIN_PLACES", 0)  # the rule off: the cause, shown
    before = verify.verify(stored, other.content.probe)  # type: ignore[union-attr]
    assert before.matched and before.inliers >= verify.MIN_INLIERS[stored.slots]


def test_part_of_a_photo_is_a_partial_match_never_a_copy(open_registry, photos):
    """Two views of one photo that overlap by half (another crop of a larger picture, or a
    moved camera): keypoints agree, the geometry says it is not a copy."""
    big = _photo("100075.jpg")
    w, h = big.size
    left = fingerprints.compute(_jpeg(big.crop((0, 0, w * 2 // 3, h))), MAX_PIXELS)
    right = fingerprints.compute(_jpeg(big.crop((w // 3, 0, w, h))), MAX_PIXELS)
    reg = open_registry()
    reg.lookup(left, Sighting("alice", "a-1"), register=True)
    codes = _codes(reg.lookup(right, Sighting("bob", "b-1"), register=False))
    assert "REUSED_BY_OTHER_SELLER" not in codes
    if "SIMILAR_TO_OTHER_SELLER" in codes:  # found by the index: reported as a shared part
        finding = codes["SIMILAR_TO_OTHER_SELLER"]
        assert int(finding.severity) == 3 and finding.evidence["verification"] == "partial"


def test_the_record_is_fixed_size_and_round_trips(fps):
    record = fps["original"].content.record
    assert len(record) == descriptor.RECORD_BYTES == 548 and record[0] == descriptor.RECORD_VERSION == 2
    stored = descriptor.decode(record)
    assert stored is not None and len(stored.descriptors) == descriptor.STORED_KEYPOINTS == 16
    assert descriptor.decode(b"") is None and descriptor.decode(bytes(descriptor.RECORD_BYTES)) is None
    assert descriptor.decode(record[:-1]) is None and descriptor.decode(bytes([9]) + record[1:]) is None
    # The original verifies against itself with every stored keypoint.
    assert verify.verify(stored, fps["original"].content.probe).inliers >= descriptor.STORED_KEYPOINTS - 2
    # A version 1 record (20 keypoints, 684 B, written before version 2) still decodes.
    probe = fps["original"].content.probe
    old = descriptor.encode(
        probe.features,
        descriptor.stable(probe.gray, probe.features),
        descriptor.textured(probe.gray, probe.features),
        1,
    )
    assert len(old) == descriptor.record_bytes(1) == 684 and old[0] == 1
    assert len(descriptor.decode(old).descriptors) == 20  # type: ignore[union-attr]


def _with_record(fp: Fingerprints, record: bytes) -> Fingerprints:
    assert fp.content is not None
    content = dataclasses.replace(fp.content)
    content.__dict__["record"] = record  # cached_property: the record this registration stores
    return dataclasses.replace(fp, content=content)


def test_version_1_records_keep_verifying_beside_version_2(open_registry, fps):
    """Images registered with 20-keypoint records (version 1, 684 B, under keys of their own
    in Redis) verify as before; registering them again keeps that record (and adds no views
    twice: the old record's 20 keypoints still verify); images registered now store version 2
    and verify too, in the same registry."""
    reg = open_registry()
    full = fps["original"]
    probe = full.content.probe
    old = descriptor.encode(
        probe.features,
        descriptor.stable(probe.gray, probe.features),
        descriptor.textured(probe.gray, probe.features),
        1,
    )
    reg.lookup(_with_record(full, old), Sighting("alice", "a-1"), register=True)
    other = fps["distinct"]
    reg.lookup(other, Sighting("carol", "c-1"), register=True)  # a version 2 record
    for name in ("scaled", "mirrored", "cropped", "bordered", "overlaid"):
        result = reg.lookup(fps[name], Sighting("mallory", f"m-{name}"), register=False)
        finding = _codes(result).get("REUSED_BY_OTHER_SELLER")
        assert finding is not None and finding.evidence["verification"] == "verified", name
        assert finding.evidence["prior_seller_id"] == "alice"
    # Seen again (now fingerprinted with a version 2 record): the old record stays, nothing is re-added.
    again = reg.lookup(full, Sighting("alice", "a-2"), register=True)
    assert "REUSED_BY_OTHER_SELLER" not in _codes(again)
    result = reg.lookup(fps["scaled"], Sighting("mallory", "m-again"), register=False)
    checks = [m.check for m in result.matches if m.check]  # one per sighting of alice's image
    assert checks and {c.state for c in checks} == {"verified"}
    assert all(c.result.inliers > descriptor.STORED_KEYPOINTS for c in checks)  # type: ignore[union-attr]
    copy = fingerprints.compute(_jpeg(_photo("35008.jpg").resize((320, 214)), 80), MAX_PIXELS)
    finding = _codes(reg.lookup(copy, Sighting("mallory", "m-other"), register=False))["REUSED_BY_OTHER_SELLER"]
    assert finding.evidence["prior_seller_id"] == "carol" and finding.evidence["verification"] == "verified"


def test_an_sqlite_file_from_before_descriptors_is_upgraded_in_place(tmp_path, fps):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE images (id INTEGER PRIMARY KEY, sha BLOB NOT NULL UNIQUE, pixels BLOB NOT NULL,
          unique_id BLOB, perceptual BLOB NOT NULL);
        CREATE TABLE bands (band INTEGER NOT NULL, value INTEGER NOT NULL, image INTEGER NOT NULL,
          PRIMARY KEY (band, value, image)) WITHOUT ROWID;
        CREATE TABLE sightings (image INTEGER NOT NULL, seller_id TEXT NOT NULL, listing_id TEXT NOT NULL,
          conversation_id TEXT NOT NULL, platform TEXT NOT NULL, seen_at REAL NOT NULL,
          PRIMARY KEY (image, seller_id, listing_id, conversation_id, platform));
    """)
    full = fps["original"]
    db.execute(
        "INSERT INTO images VALUES (1, ?, ?, NULL, ?)", (full.sha256[:16], full.pixel_sha256[:16], full.perceptual)
    )
    from services.metadata.registry import bands

    db.executemany("INSERT INTO bands VALUES (?, ?, 1)", list(enumerate(bands.split(full.perceptual))))
    db.execute("INSERT INTO sightings VALUES (1, 'alice', 'a-1', '', 'market', 1700000000)")
    db.commit()
    db.close()
    reg = SqliteRegistry(path)
    try:
        same = _codes(reg.lookup(full, Sighting("bob", "b-1"), register=False))
        assert same["REUSED_BY_OTHER_SELLER"].evidence["copy_kind"] == "exact bytes"
        assert "SIMILAR_TO_OTHER_SELLER" in _codes(reg.lookup(fps["scaled"], Sighting("bob", "b-2"), register=False))
        reg.lookup(full, Sighting("alice", "a-2"), register=True)
        assert "REUSED_BY_OTHER_SELLER" in _codes(reg.lookup(fps["scaled"], Sighting("bob", "b-3"), register=False))
    finally:
        reg.close()
