"""mri_core.inference: probabilities, TTA uncertainty, temperature, masks and warnings."""

import numpy as np
import pytest

from factories import phantom
from mri_core import inference


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
    assert 0.0 <= s.tumour_probability <= 1.0
    if not s.present:
        assert not s.mask.any()


def test_segmentation_maps_average_the_mirror_mapped_back():
    x = np.random.default_rng(1).random((3, 8, 10, 2)).astype(np.float32)
    # A forward pass that is not mirror-symmetric: the map leans to the left of the image.
    ramp = np.linspace(1.0, 0.0, 10, dtype=np.float32)
    calls = []

    def predict(v):
        calls.append(len(v))
        return (v[..., :1] * ramp[None, None, :, None])

    plain = inference.segmentation_maps(predict, x, tta=False)
    np.testing.assert_allclose(plain, x[..., 0] * ramp)
    both = inference.segmentation_maps(predict, x)
    np.testing.assert_allclose(both, x[..., 0] * (ramp + ramp[::-1]) / 2, rtol=1e-6)
    assert calls == [3, 6]  # both views in one forward pass
    # The averaged maps no longer depend on which way round the slice was read.
    np.testing.assert_allclose(inference.segmentation_maps(predict, x[:, :, ::-1]), both[:, :, ::-1], rtol=1e-6)


def test_segment_tta_off_is_the_single_view(segmenter):
    img = np.dstack([phantom(64, 64, seed=5)] * 3)
    (one,) = inference.segment(segmenter, [img], tta=False)
    x = inference.prepare_inputs(segmenter, [img])
    expected = inference.run_model(segmenter, x)[0, ..., 0]
    from mri_core.preprocess import resize

    np.testing.assert_allclose(one.prob, np.clip(resize(expected, (64, 64)), 0, 1), atol=1e-6)


def test_segment_volume_keeps_one_lesion_and_rescores(intensity_segmenter):
    vol = np.zeros((4, 32, 32, 3), np.float32)
    vol[0:3, 4:16, 4:16] = 1.0  # the lesion, on slices 0-2
    vol[3, 24:30, 24:30] = 1.0  # a bright spot alone on slice 3
    slices = list(vol)
    plain = inference.segment(intensity_segmenter, slices)
    assert [s.present for s in plain] == [True, True, True, True]
    joined = inference.segment(intensity_segmenter, slices, volume=True)
    assert [s.present for s in joined] == [True, True, True, False]
    assert not joined[3].mask.any() and joined[3].tumour_probability < 0.5
    for a, b in zip(plain[:3], joined[:3]):
        np.testing.assert_array_equal(a.mask, b.mask)
        assert a.tumour_probability == pytest.approx(b.tumour_probability)
    # One slice has no volume around it: left as it is.
    (single,) = inference.segment(intensity_segmenter, [slices[3]], volume=True)
    assert single.present and single.mask.any()


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

    from mri_core.cards import InputStats
    from mri_core.preprocess import prepare

    img = phantom(80, 70)
    mean = float(prepare(img, classifier.preprocessing).mean())
    far = replace(classifier, card=replace(classifier.card, input_stats=InputStats(mean=mean + 0.5, std=0.01)))
    near = replace(classifier, card=replace(classifier.card, input_stats=InputStats(mean=mean, std=0.01)))
    assert any("brightness" in w for w in inference.input_warnings(img, far))
    assert not any("brightness" in w for w in inference.input_warnings(img, near))
    # A caller that already prepared the slice passes it in and gets the same warnings.
    x = prepare(img, classifier.preprocessing)
    assert inference.input_warnings(img, far, model_input=x) == inference.input_warnings(img, far)


def test_a_dark_lesion_is_found_once_the_card_brightens_it(intensity_segmenter):
    from dataclasses import replace

    from mri_core.cards import Intensity
    from mri_core.models import LoadedModel

    image = np.zeros((32, 32, 3), np.float32)
    image[4:28, 4:28] = 0.1  # a dim head ...
    image[12:20, 12:20, 0] = 0.2  # ... with a lesion that the identity "network" scores 0.2
    (plain,) = inference.segment(intensity_segmenter, [image])
    assert not plain.mask.any()
    card = intensity_segmenter.card
    card = replace(card, preprocessing=replace(card.preprocessing, intensity=Intensity(reference_p99=(0.9, 0.9, 0.9), max_gain=4.0)))
    brightened = LoadedModel("brightened", card, intensity_segmenter.keras_model, intensity_segmenter.path)
    assert brightened.preprocessing["intensity"] == {"reference_p99": [0.9, 0.9, 0.9], "max_gain": 4.0}
    (found,) = inference.segment(brightened, [image])
    assert found.mask[12:20, 12:20].all() and found.mask.sum() == 64
    # brightened by the most allowed (0.9 / 0.2 > 4): the page says the image may still be too dark
    assert any("darker than the training slices" in w for w in inference.input_warnings(image, brightened))
    assert not any("darker" in w for w in inference.input_warnings(np.clip(image * 4, 0, 1), brightened))
    # a grey upload is brightened as three equal channels, and warned about the same way
    assert any("darker than the training slices" in w for w in inference.input_warnings(image[..., 0], brightened))


# --------------------------------------------------------------------------- analyse_slice


def test_analyse_slice_is_the_pages_chain_from_one_preparation(classifier):
    from dataclasses import FrozenInstanceError

    from mri_core import explain
    from mri_core.preprocess import prepare

    img = phantom(90, 75, seed=4)
    a = inference.analyse_slice(classifier, img, "CT")
    x = prepare(img, classifier.preprocessing)
    np.testing.assert_array_equal(a.model_input, x)
    pred = inference.classify_inputs(classifier, x[None], modality="CT")[0]
    np.testing.assert_array_equal(a.prediction.view_probs, pred.view_probs)
    assert not a.prediction.reliable and "modality is CT" in a.prediction.reason
    heat = explain.gradcam(classifier, x, pred.index)
    np.testing.assert_array_equal(a.heatmap, heat)
    np.testing.assert_array_equal(a.gradcam, explain.overlay(x[..., 0], heat))
    assert a.warnings == tuple(inference.input_warnings(img, classifier, pred, "CT"))
    assert a.input_image.shape == x.shape[:2] and a.features is None
    with pytest.raises(FrozenInstanceError):
        a.prediction = None


def test_analyse_slice_explains_a_chosen_class_at_a_chosen_layer(classifier):
    from mri_core import explain

    img = phantom(80, 80, seed=6)
    layer = explain.conv_layers(classifier.keras_model)[0]
    top = inference.analyse_slice(classifier, img).prediction.index
    other = (top + 1) % len(classifier.class_names)
    a = inference.analyse_slice(classifier, img, target=other, layer=layer, features=True)
    np.testing.assert_array_equal(a.heatmap, explain.gradcam(classifier, a.model_input, other, layer_name=layer))
    np.testing.assert_array_equal(a.features, explain.feature_maps(classifier, a.model_input, layer))
    with pytest.raises(ValueError, match="layer"):
        inference.analyse_slice(classifier, img, features=True)


def test_analyse_slice_of_a_segmenter_has_no_call(segmenter):
    from mri_core import explain

    img = np.dstack([phantom(64, 64, seed=2)] * 3)
    a = inference.analyse_slice(segmenter, img)
    assert a.prediction is None and a.input_image.shape == (*a.model_input.shape[:2], 3)
    np.testing.assert_array_equal(a.heatmap, explain.gradcam(segmenter, a.model_input))
    assert a.warnings == tuple(inference.input_warnings(img, segmenter))
    bare = inference.analyse_slice(segmenter, img, gradcam=False)
    assert bare.heatmap is None and bare.gradcam is None and bare.warnings == a.warnings
