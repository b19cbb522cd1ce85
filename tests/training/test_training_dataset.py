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
    params = {
        label: [postprocess.draw(postprocess.TRAIN, np.random.default_rng([11, i, 2])) for i in range(label ^ 1, n, 2)]
        for label in (0, 1)
    }
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


# ---- the diverse training generator ----------------------------------------------------------


@pytest.mark.parametrize("method", compose.DIVERSE_METHODS)
def test_diverse_methods_are_deterministic_by_seed(photos, method):
    dst, dst_labels = bsds_mod.load(photos[4])
    src, src_labels = bsds_mod.load(photos[5])
    runs = [
        compose.compose_train(method, dst, dst_labels, src, src_labels, np.random.default_rng(seed))
        for seed in (3, 3, 4)
    ]
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_diverse_training_never_uses_a_heldout_ingredient():
    """The held-out test set must stay a different forger and pipeline."""
    assert not set(compose.TRAIN_METHODS) & set(compose.HELDOUT_METHODS)
    codecs = {f[0] for f in postprocess.TRAIN_DIVERSE.formats}
    assert codecs <= {"cv2-jpeg", "cv2-jpeg-444", "png"}
    assert not set(postprocess.TRAIN_DIVERSE.kernels) & set(postprocess.HELDOUT.kernels)


def test_paper_generator_keeps_segment_methods_and_train_post_processing(photos):
    """The 'train' generator (the validation test set, the first shipped model) is unchanged
    by the diverse methods: only segment pastes, only the TRAIN profile."""
    gen = dataset.CompositeGenerator(photos, seed=5)
    assert gen.methods == compose.SEGMENT_METHODS and gen.profile == postprocess.TRAIN
    assert all(gen[i].post.gamma == 1.0 and gen[i].post.noise_sigma == 0.0 for i in range(8))
    diverse = dataset.CompositeGenerator(photos, seed=5, generator="diverse")
    assert diverse.methods == compose.TRAIN_METHODS and diverse.profile == postprocess.TRAIN_DIVERSE


def test_a_methods_subset_makes_only_those_composites(photos):
    """train.py --methods: the ablation draws only from the methods given."""
    subset = ("blob_splice", "paste_recompressed")
    gen = dataset.CompositeGenerator(photos, seed=3, generator="diverse", methods=subset)
    made = {gen[i].method for i in range(0, 16, 2)}
    assert made == set(subset)
    assert all(gen[i].mask.any() for i in range(0, 16, 2))


def test_blob_masks_are_irregular_and_never_follow_their_box():
    for seed in range(20):
        blob = compose._blob_mask(321, 481, np.random.default_rng(seed))
        assert blob.any()
        # Zero on the box's border: no straight side (a rectangle is a held-out shape).
        assert not (blob[0].any() or blob[-1].any() or blob[:, 0].any() or blob[:, -1].any())
        ys, xs = np.nonzero(blob)
        bbox = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert blob.sum() < 0.9 * bbox  # not a filled box


@pytest.mark.parametrize("op", compose.RETOUCH_OPS)
def test_every_retouch_changes_the_image(photos, op):
    image, _ = bsds_mod.load(photos[6])
    edited = compose._retouched(image, op, np.random.default_rng(0))
    assert edited.shape == image.shape and edited.dtype == np.uint8
    assert (edited != image).any(-1).mean() > 0.2  # a visible edit, not a rounding accident


def test_diverse_post_processing_is_shared_by_both_classes_and_deterministic(photos):
    gen = dataset.CompositeGenerator(photos, seed=13, generator="diverse")
    for i in range(6):
        assert gen[i].post == postprocess.draw(postprocess.TRAIN_DIVERSE, np.random.default_rng([13, i, 2]))
    params = [postprocess.draw(postprocess.TRAIN_DIVERSE, np.random.default_rng([13, i, 2])) for i in range(400)]
    for label in (0, 1):
        ps = params[label ^ 1 :: 2]
        assert abs(np.mean([p.gamma != 1.0 for p in ps]) - 0.3) < 0.08
        assert abs(np.mean([p.noise_sigma > 0 for p in ps]) - 0.2) < 0.08
        assert abs(np.mean([p.codec == "cv2-jpeg-444" for p in ps]) - 0.3) < 0.08
    image, _ = bsds_mod.load(photos[0])
    noisy = postprocess.Params(1.0, "area", "png", 0, gamma=0.9, noise_sigma=1.5, noise_seed=42)
    first, second = (
        postprocess.apply(image, np.zeros(image.shape[:2], bool), noisy)[0],
        postprocess.apply(image, np.zeros(image.shape[:2], bool), noisy)[0],
    )
    assert first == second and postprocess.decode(first).tolist() != image.tolist()


def test_cv2_jpeg_444_keeps_full_chroma(photos):
    import io

    from PIL import Image, JpegImagePlugin

    image, _ = bsds_mod.load(photos[0])
    for codec, sampling in (("cv2-jpeg-444", 0), ("cv2-jpeg", 2)):  # Pillow: 0 = 4:4:4, 2 = 4:2:0
        with Image.open(io.BytesIO(postprocess.encode(image, codec, 90))) as decoded:
            assert JpegImagePlugin.get_sampling(decoded) == sampling, codec
