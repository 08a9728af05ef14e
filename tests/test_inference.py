"""mri_core.inference: probabilities, TTA uncertainty, temperature, masks and warnings."""

import numpy as np
import pytest

from factories import phantom
from mri_core import inference
from mri_core.models import load


@pytest.fixture(scope="module")
def classifier(tiny_models):
    return load("brain_tumor_mri_sepnet", tiny_models)


@pytest.fixture(scope="module")
def segmenter(tiny_models):
    return load("lgg_unet_lite", tiny_models)


def test_classify_probabilities(classifier):
    preds = inference.classify(classifier, [phantom(80, 70), np.dstack([phantom()] * 3)])
    assert len(preds) == 2
    for p in preds:
        assert p.probs.shape == (4,) and p.probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert p.label in classifier.class_names and 0 <= p.uncertainty <= 0.5
        assert p.view_probs.shape == (4, 4)
    assert inference.classify(classifier, []) == []


def test_batch_equals_single(classifier):
    imgs = [phantom(seed=i) for i in range(5)]
    batch = inference.classify(classifier, imgs)
    for img, b in zip(imgs, batch):
        np.testing.assert_allclose(inference.classify(classifier, [img])[0].probs, b.probs, atol=1e-5)


def test_classify_inputs_equals_classify(classifier):
    from mri_core.preprocess import prepare

    img = phantom(90, 75, seed=3)
    x = prepare(img, classifier.preprocessing)
    a = inference.classify(classifier, [img])[0]
    b = inference.classify_inputs(classifier, x[None])[0]
    np.testing.assert_array_equal(a.view_probs, b.view_probs)
    assert a.label == b.label and a.uncertainty == b.uncertainty


def test_tta_views():
    x = np.random.default_rng(0).random((2, 20, 20, 1)).astype(np.float32)
    v = inference.tta_views(x)
    assert v.shape == (2, 4, 20, 20, 1)
    np.testing.assert_array_equal(v[:, 0], x)
    np.testing.assert_array_equal(v[:, 1], x[:, :, ::-1])


def test_calibrate():
    p = np.array([[0.7, 0.2, 0.1]])
    np.testing.assert_allclose(inference.calibrate(p, 1.0), p)
    hot = inference.calibrate(p, 0.5)
    cold = inference.calibrate(p, 2.0)
    assert hot[0, 0] > 0.7 > cold[0, 0]
    np.testing.assert_allclose(hot.sum(), 1.0)


def test_segment(segmenter):
    img = np.dstack([phantom(100, 120)] * 3)
    (s,) = inference.segment(segmenter, [img])
    assert s.prob.shape == (100, 120) and s.mask.shape == (100, 120) and s.mask.dtype == bool
    assert 0.0 <= s.tumor_probability <= 1.0
    if not s.present:
        assert not s.mask.any()


def test_tumor_probability_needs_a_region():
    p = np.zeros((32, 32), np.float32)
    p[0, 0] = 1.0
    assert inference.tumor_probability(p, 16) < 0.1
    p[:8, :8] = 0.9
    assert inference.tumor_probability(p, 16) > 0.85


def test_warnings(classifier):
    rng = np.random.default_rng(0)
    photo = rng.random((64, 64, 3)).astype(np.float32)
    w = inference.input_warnings(photo, classifier)
    assert any("colour" in x for x in w)
    assert any("MR" in x for x in inference.input_warnings(phantom(), classifier, modality="CT"))
    unsure = inference.ClassPrediction(np.array([0.4, 0.3, 0.2, 0.1]), classifier.class_names, 0.3, np.zeros((4, 4)))
    w = inference.input_warnings(phantom(), classifier, unsure)
    assert any("unsure" in x for x in w) and any("uncertainty" in x for x in w)


def test_brightness_warning_compares_the_prepared_input(classifier):
    from dataclasses import replace

    from mri_core.preprocess import prepare

    img = phantom(80, 70)
    mean = float(prepare(img, classifier.preprocessing).mean())
    far = replace(classifier, card={**classifier.card, "input_stats": {"mean": mean + 0.5, "std": 0.01}})
    near = replace(classifier, card={**classifier.card, "input_stats": {"mean": mean, "std": 0.01}})
    assert any("brightness" in w for w in inference.input_warnings(img, far))
    assert not any("brightness" in w for w in inference.input_warnings(img, near))
    # A caller that already prepared the slice passes it in and gets the same warnings.
    x = prepare(img, classifier.preprocessing)
    assert inference.input_warnings(img, far, model_input=x) == inference.input_warnings(img, far)
