"""Composite synthesis: determinism, exact masks, targets, shared post-processing, splits."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from training import bsds as bsds_mod
from training import compose, dataset, postprocess


@pytest.fixture(scope="module")
def photos(bsds):
    return bsds_mod.list_photos("train", bsds)[:12]


def test_same_seed_same_samples_other_seed_other_samples(photos):
    a = dataset.CompositeGenerator(photos, seed=7)
    b = dataset.CompositeGenerator(photos, seed=7)
    c = dataset.CompositeGenerator(photos, seed=8)
    for i in range(6):
        assert a[i].data == b[i].data
        assert np.array_equal(a[i].mask, b[i].mask)
    assert any(a[i].data != c[i].data for i in range(0, 6, 2))


@pytest.mark.parametrize("generator", dataset.GENERATORS)
def test_targets_are_area_fractions_and_labels_alternate(photos, generator):
    gen = dataset.CompositeGenerator(photos, seed=3, generator=generator)
    for i in range(16):
        s = gen[i]
        assert s.mask.shape == s.image.shape[:2]
        assert s.target == pytest.approx(float(s.mask.mean()))
        if i % 2:
            assert s.label == 0 and s.method == "authentic" and s.target == 0.0
        else:
            assert s.label == 1 and 0.0 < s.target < 1.0


@pytest.mark.parametrize("method", compose.TRAIN_METHODS)
def test_train_methods_mask_is_exactly_the_changed_pixels(photos, method):
    dst, dst_labels = bsds_mod.load(photos[0])
    src, src_labels = bsds_mod.load(photos[1])
    for seed in range(3):
        out, mask = compose.compose_train(method, dst, dst_labels, src, src_labels, np.random.default_rng(seed))
        changed = (out != dst).any(-1)
        assert mask.any()
        assert np.array_equal(mask, changed), method
        assert np.array_equal(out[~mask], dst[~mask])  # nothing outside the mask moved


@pytest.mark.parametrize("method", compose.HELDOUT_METHODS)
def test_heldout_methods_mask_is_exactly_the_changed_pixels(photos, method):
    dst, _ = bsds_mod.load(photos[2])
    src, _ = bsds_mod.load(photos[3])
    out, mask = compose.compose_heldout(method, dst, src, np.random.default_rng(0))
    assert mask.any() and np.array_equal(mask, (out != dst).any(-1))


def test_paste_without_feather_keeps_segment_pixels(photos):
    """The paper's plain paste: inside the mask, pixels are the source's, unchanged."""
    dst, _ = bsds_mod.load(photos[0])
    src, src_labels = bsds_mod.load(photos[1])
    out, mask = compose.paste_segment(dst, src, src_labels, np.random.default_rng(5))
    pasted = out[mask]
    src_values = {tuple(v) for v in src.reshape(-1, 3)[::1]}
    assert all(tuple(v) in src_values for v in pasted[:: max(1, len(pasted) // 200)])


def test_authentic_and_composite_share_the_post_processing_distribution(photos):
    """Post-processing parameters come from a stream that ignores the label: sample i's are
    the same whichever class it is, and both classes draw from one distribution."""
    gen = dataset.CompositeGenerator(photos, seed=11)
    for i in range(8):
        expected = postprocess.draw(postprocess.TRAIN, np.random.default_rng([11, i, 2]))
        assert gen[i].post == expected
    n = 400
    params = {label: [postprocess.draw(postprocess.TRAIN, np.random.default_rng([11, i, 2]))
                      for i in range(label ^ 1, n, 2)] for label in (0, 1)}
    for label, ps in params.items():
        codecs = collections.Counter(p.codec for p in ps)
        assert abs(codecs["cv2-jpeg"] / len(ps) - 0.85) < 0.08, (label, codecs)
        assert abs(np.mean([p.scale != 1.0 for p in ps]) - 0.5) < 0.1
    q = {label: np.mean([p.quality for p in ps if p.codec == "cv2-jpeg"]) for label, ps in params.items()}
    assert abs(q[0] - q[1]) < 3.0  # quality 60-100: mean 80 for both classes
    # And the files really are encoded as drawn, for both classes.
    for i in range(4):
        s = gen[i]
        if s.post.codec == "cv2-jpeg":
            assert s.data[:3] == b"\xff\xd8\xff"
        else:
            assert s.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_and_test_photos_never_overlap(bsds):
    train = {p.name for p in bsds_mod.list_photos("train", bsds)}
    val = {p.name for p in bsds_mod.list_photos("val", bsds)}
    assert len(train) == 200 and len(val) == 100 and not train & val
    fit, hold = bsds_mod.split_photos(bsds_mod.list_photos("train", bsds), 0.3, 0)
    assert len(hold) == 60 and not {p.name for p in fit} & {p.name for p in hold}


def test_recompression_condition_is_a_jpeg_at_the_given_quality(photos):
    s = dataset.CompositeGenerator(photos, seed=1, generator="heldout")[0]
    out = postprocess.recompress_jpeg(s.data, 75)
    assert out[:3] == b"\xff\xd8\xff" and postprocess.decode(out).shape == s.image.shape
