"""mri_core.training.sources: source labels, sampling balanced by source, and appearance changes
that move an image's look to another source's."""

import numpy as np
import pytest

from mri_core.training import sources as S

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def brain(size=64, level=0.5, seed=0, channels=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (size * 0.4) ** 2
    img = np.where(disc, np.clip(level + rng.normal(0, 0.1, (size, size)), 0.06, 1), 0.0).astype(np.float32)
    return np.repeat(img[..., None], channels, axis=-1)


def test_the_tumour_sets_notumor_is_web_collected_and_its_tumours_are_the_hospitals():
    s = S.tumour_set_sources(np.array([0, 1, 2, 3, 2]), CLASSES)
    assert list(s) == [S.HOSPITAL_T1C, S.HOSPITAL_T1C, S.WEB, S.HOSPITAL_T1C, S.WEB]


def test_balanced_probabilities_weigh_every_source_alike_within_a_group():
    groups = np.array([0] * 90 + [0] * 10 + [1] * 50)
    sources = np.array(["a"] * 90 + ["b"] * 10 + ["a"] * 50)
    p = S.balanced_probabilities(groups, sources)
    assert p.sum() == pytest.approx(1.0)
    assert p[:90].sum() == pytest.approx(0.25) and p[90:100].sum() == pytest.approx(0.25)  # a and b alike in group 0
    assert p[100:].sum() == pytest.approx(0.5)  # each group half
    # Drawn by these weights, the rare source comes up as often as the common one.
    draws = np.random.default_rng(0).choice(len(p), 20000, p=p)
    assert abs((draws < 90).mean() - (draws >= 90).mean() + 0.5) < 0.03


def test_histogram_matching_moves_the_brain_onto_the_reference_and_keeps_the_background():
    dark, bright = brain(level=0.3), brain(level=0.7, seed=1)
    reference = S.source_quantiles(bright[None], np.array(["x"]), 5, 0)["x"][0]
    out = S.match_histogram(dark, reference)
    inside = dark[..., 0] > 0.05
    assert out[..., 0][inside].mean() == pytest.approx(bright[..., 0][bright[..., 0] > 0.05].mean(), abs=0.03)
    assert (out[..., 0][~inside] == 0).all()


def test_film_border_frames_the_slice_and_tint_colours_only_three_channels():
    rng = np.random.default_rng(3)
    img = brain(channels=3)
    framed = S.film_border(rng, img)
    assert framed.shape == img.shape and not np.allclose(framed, img)
    tinted = S.tint(np.random.default_rng(1), img)
    assert not np.allclose(tinted[..., 0], tinted[..., 1])
    grey = brain(channels=1)
    np.testing.assert_array_equal(S.tint(rng, grey), grey)


def test_cross_source_appearance_is_seeded_bounded_and_off_at_zero():
    img = brain(channels=3)
    refs = S.source_quantiles(np.stack([brain(level=0.7, channels=3)]), np.array(["x"]), 5, 0)
    a = S.cross_source_appearance(np.random.default_rng(9), img, 1.0, refs)
    b = S.cross_source_appearance(np.random.default_rng(9), img, 1.0, refs)
    np.testing.assert_array_equal(a, b)
    assert a.shape == img.shape and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(S.cross_source_appearance(np.random.default_rng(9), img, 0.0, refs), img)


def test_batches_drawn_by_probability_and_with_a_source_target():
    from mri_core.training.augment import AugmentedBatches

    x = np.stack([brain(seed=i) for i in range(10)])
    y = np.eye(2)[np.array([0] * 9 + [1])]
    p = np.array([0.0] * 9 + [1.0])  # only the last image
    batches = AugmentedBatches(x, y, 5, seed=0, probabilities=p, extra_targets={"source": np.eye(3)[np.arange(10) % 3]},
                               source_appearance=0.5, references=S.source_quantiles(x, np.array(["a"] * 10), 3, 0))
    images, targets = batches[0]
    assert images.shape == (5, 64, 64, 1) and set(targets) == {"probs", "source"}
    np.testing.assert_array_equal(targets["probs"], np.eye(2)[[1] * 5])
    np.testing.assert_array_equal(targets["source"], np.eye(3)[[0] * 5])  # image 9: source 9 % 3 = 0
