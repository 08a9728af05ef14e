"""mri_core.reliability: the out-of-distribution distance, its threshold, the better-than-chance
rule, and the abstentions they cause in inference."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mri_core import inference, reliability as R
from mri_core.cards import CallRecord


def clusters(n=200, d=8, seed=0):
    """Two classes of features: unit Gaussians around +3 and -3 on the first axis."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    f = rng.normal(size=(n, d))
    f[:, 0] += np.where(y == 0, 3.0, -3.0)
    return f, y


def test_distance_is_small_near_the_training_features_and_large_far_away():
    f, y = clusters()
    det = R.fit_detector([f], y, 2, [clusters(seed=1)[0]])
    near = np.array([[3.0] + [0.0] * 7, [-3.0] + [0.0] * 7])
    far = np.array([[0.0, 25.0] + [0.0] * 6, [40.0] + [0.0] * 7])
    assert np.all(det.distance([near]) < 0.5 * det.threshold)
    assert np.all(det.distance([far]) > det.threshold * 3)
    # one covariance, unit variance per axis: the distance to the nearest mean is the Euclidean one, near enough
    d = R.OodDetector.layer_distance(np.array([[3.0, 2.0] + [0.0] * 6]), det.means[0], det.precisions[0])
    assert d[0] == pytest.approx(2.0, rel=0.15)


def test_threshold_is_the_validation_quantile():
    f, y = clusters()
    val = clusters(seed=2)[0]
    det = R.fit_detector([f], y, 2, [val], quantile=0.9)
    assert (det.distance([val]) > det.threshold).mean() == pytest.approx(0.1, abs=0.01)
    assert det.threshold == pytest.approx(np.quantile(det.distance([val]), 0.9))


def test_any_layer_far_from_its_training_features_counts():
    """Two layers: an image typical in one and far off in the other is out of distribution."""
    f, y = clusters()
    g, _ = clusters(seed=3)
    det = R.fit_detector([f, g], y, 2, [clusters(seed=1)[0], clusters(seed=4)[0]])
    typical = np.array([[3.0] + [0.0] * 7])
    odd = np.array([[0.0, 30.0] + [0.0] * 6])
    assert det.distance([typical, typical])[0] < det.threshold
    assert det.distance([typical, odd])[0] > det.threshold and det.distance([odd, typical])[0] > det.threshold


def test_save_and_load(tmp_path: Path):
    f, y = clusters()
    det = R.fit_detector([f, f[:, :4]], y, 2, [f, f[:, :4]])
    det.save(tmp_path / R.OOD_FILE)
    back = R.OodDetector.load(tmp_path / R.OOD_FILE)
    assert back.threshold == pytest.approx(det.threshold) and len(back.means) == 2
    np.testing.assert_allclose(back.distance([f[:5], f[:5, :4]]), det.distance([f[:5], f[:5, :4]]), rtol=1e-4)


def test_wilson_lower():
    assert R.wilson_lower(0, 0) == 0.0
    assert R.wilson_lower(50, 100) == pytest.approx(0.4183, abs=1e-3)  # one-sided 95 %, z = 1.645
    assert R.wilson_lower(100, 100) > 0.97


def test_call_reliability_from_a_confusion_matrix():
    # rows: truth, columns: call. A is called well; B's calls are right as often as B occurs; C is never called.
    confusion = [[90, 5, 0],
                 [50, 50, 0],
                 [40, 100, 0]]
    calls = R.call_reliability(confusion, ["A", "B", "C"])
    assert calls["A"]["better_than_chance"] and calls["A"]["precision"] == pytest.approx(90 / 180)
    assert calls["B"]["precision"] == pytest.approx(50 / 155) and calls["B"]["chance"] == pytest.approx(100 / 335)
    assert not calls["B"]["better_than_chance"]  # 32 % right against 30 % by chance: within noise
    assert not calls["C"]["better_than_chance"] and calls["C"]["calls"] == 0


def test_judge():
    det = R.OodDetector([np.zeros((1, 2))], [np.eye(2)], [1.0], threshold=5.0)
    calls = {"good": CallRecord(calls=20, better_than_chance=True, precision=0.9, chance=0.3),
             "weak": CallRecord(calls=25, better_than_chance=False, precision=0.32, chance=0.3)}
    assert R.judge("good", 1.0, det, calls) == (True, "")
    ok, why = R.judge("good", 9.0, det, calls)
    assert not ok and "unlike the images the model was trained on" in why and "1.8×" in why
    ok, why = R.judge("weak", 1.0, det, calls, balanced_accuracy=0.41)
    assert not ok and "no better than" in why and "41%" in why
    assert R.judge("weak", None, None, None) == (True, "")


def test_trained_models_carry_a_detector(classifier, tiny_models):
    ood, calls = classifier.card.ood, classifier.card.calls
    assert (tiny_models / classifier.name / ood.file).exists()
    assert classifier.ood is not None and classifier.features_model is not None
    assert ood.layers[-1] == "gap" and len(ood.layers) == 2
    assert set(calls) == set(classifier.class_names)
    assert 0.0 <= ood.validation_abstained < 0.5  # 2 % on real sets; a tiny set rounds up


def test_classify_abstains_beyond_the_threshold(classifier):
    from factories import phantom

    images = [phantom(seed=i) for i in range(3)]
    preds = inference.classify(classifier, images)
    assert all(p.ood_score is not None and p.ood_score >= 0 for p in preds)
    strict = dataclasses.replace(classifier, ood=dataclasses.replace(classifier.ood, threshold=-1.0))
    assert all(not p.reliable and p.reason for p in inference.classify(strict, images))
    lenient = dataclasses.replace(classifier, ood=dataclasses.replace(classifier.ood, threshold=np.inf),
                                  card=dataclasses.replace(classifier.card, reliability=None))
    assert all(p.reliable and not p.reason for p in inference.classify(lenient, images))
    # The probabilities do not depend on whether the features are computed alongside them.
    plain = dataclasses.replace(classifier, ood=None, features_model=None)
    for a, b in zip(inference.classify(plain, images), preds):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
        assert a.ood_score is None


def test_a_dicom_of_another_modality_is_abstained_on(classifier):
    from factories import phantom

    image = phantom()
    lenient = dataclasses.replace(classifier, ood=None, features_model=None, card=dataclasses.replace(classifier.card, reliability=None))
    assert inference.classify(lenient, [image], modality="MR")[0].reliable
    for modality in ("CT", "US", "NM"):
        pred = inference.classify(classifier, [image], modality=modality)[0]
        assert not pred.reliable and f"modality is {modality}" in pred.reason
    assert R.modality_reason("OT") is None and R.modality_reason("unknown") is None



BUNDLED = Path(__file__).resolve().parent.parent / "models"


@pytest.mark.parametrize("name", ["brain_tumor_mobilenetv3_small", "brain_tumor_mri_sepnet"])
def test_the_bundled_tumour_models_abstain_on_images_that_are_not_brain_mri(name):
    """A picture, noise, a CT, a bone-scan film, an ultrasound: no call, whatever the model's
    top class would have been (by their features, or by the modality their file gives)."""
    from factories import non_brain_images
    from mri_core.models import load

    loaded = load(name, BUNDLED)
    called = {}
    for kind, (image, modality) in non_brain_images().items():
        pred = inference.classify(loaded, [image], modality=modality)[0]
        if pred.reliable:
            called[kind] = f"{pred.label} {pred.confidence:.0%}"
    assert not called, f"{name} called non-brain images: {called}"


@pytest.mark.parametrize("name", ["lgg_unet_lite", "lgg_flair_unet_lite", "lgg_resunet"])
def test_the_bundled_mask_models_hold_back_or_warn_on_images_that_are_not_brain_mri(name):
    """The same nine images: each mask model holds its call back (features far from its training
    slices) or the page warns (a CT file's modality); none gets a plain "tumour" / "no tumour"."""
    from factories import non_brain_images
    from mri_core.models import load

    loaded = load(name, BUNDLED)
    plain, held = {}, 0
    for kind, (image, modality) in non_brain_images().items():
        pred = inference.segment(loaded, [image], modality=modality)[0]
        held += not pred.reliable
        if pred.reliable and not inference.input_warnings(image, loaded, None, modality):
            plain[kind] = f"{'tumour' if pred.present else 'no tumour'} {pred.tumour_probability:.0%}"
    assert not plain, f"{name} answered non-brain images plainly: {plain}"
    assert held == 9  # the CT by the modality its file gives (before issue 27 the mask models ignored it)


def blank_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"black": np.zeros((256, 256), np.float32), "white": np.ones((256, 256), np.float32),
            "grey": np.full((256, 256), 0.4, np.float32),
            "faint_noise": np.clip(0.3 + rng.normal(0, 0.002, (256, 256)), 0, 1).astype(np.float32),
            "black_rgb": np.zeros((256, 256, 3), np.float32)}


@pytest.mark.parametrize("name", ["brain_tumor_mobilenetv3_small", "alzheimer_mobilenetv3_small", "lgg_unet_lite",
                                  "lgg_flair_unet_lite"])
def test_a_blank_image_is_never_a_reliable_call(name):
    """Before issue 27 an all-black slice was called ``notumor`` at 99 %, reliable, with no warning."""
    from mri_core.models import load

    loaded = load(name, BUNDLED)
    images = list(blank_images().values())
    preds = inference.classify(loaded, images) if loaded.kind == "classifier" else inference.segment(loaded, images)
    for kind, pred in zip(blank_images(), preds):
        assert not pred.reliable and "blank or nearly uniform" in pred.reason, kind


def test_blank_reason_reads_the_model_input():
    assert R.blank_reason(np.zeros((8, 8, 1))) and R.blank_reason(None) is None
    head = np.zeros((64, 64), np.float32)
    head[30:34, 30:34] = 0.8  # a small head in a black field is a picture, not a blank
    assert R.blank_reason(head) is None
    assert R.judge("x", None, None, None, model_input=np.zeros((4, 4)))[0] is False


# --------------------------------------------------------------------------- segmenters


def test_segmenter_features_are_the_encoders_quarter_resolution_on_a_grid(segmenter):
    """A segmenter has no pool: the encoder's first and last layers at a quarter of the resolution
    (before the bottleneck, not the decoder's), read on a grid, as its training recorded."""
    km = segmenter.keras_model
    layers = R.feature_layers(km, segmenter.card.kind)
    names = [layer.name for layer in km.layers]
    side = km.input_shape[1]
    deepest = min(l.output.shape[1] for l in km.layers if len(l.output.shape) == 4)
    first_deep = next(i for i, l in enumerate(km.layers) if len(l.output.shape) == 4 and l.output.shape[1] == deepest)
    assert len(layers) == 2 and names.index(layers[0]) < names.index(layers[1]) < first_deep
    assert all(km.get_layer(n).output.shape[1] == side // 4 for n in layers)
    assert R.feature_grid("segmenter") == R.SEGMENTER_GRID and R.feature_grid("classifier") is None
    assert segmenter.card.ood.layers == tuple(layers) and segmenter.card.ood.grid == R.SEGMENTER_GRID
    # one vector per layer: channels x cells (the tiny model's 8 px maps give 4 x 4 cells of 2 px)
    out = R.features_model(km, layers, R.SEGMENTER_GRID)(np.zeros((1, *km.input_shape[1:]), np.float32))
    cells = (side // 4 // (side // 4 // R.SEGMENTER_GRID)) ** 2
    assert [o.shape[-1] for o in out[1:]] == [km.get_layer(n).output.shape[-1] * cells for n in layers]


def test_segment_abstains_beyond_the_threshold_and_keeps_its_masks(segmenter):
    from factories import phantom

    images = [np.dstack([phantom(seed=i)] * 3) for i in range(3)]
    preds = inference.segment(segmenter, images, volume=True)
    assert all(p.reliable and p.ood_score is not None for p in preds)  # the tiny model's threshold is widened
    strict = dataclasses.replace(segmenter, ood=dataclasses.replace(segmenter.ood, threshold=-1.0))
    held = inference.segment(strict, images, volume=True)
    assert all(not p.reliable and "unlike the images the model was trained on" in p.reason for p in held)
    # The masks and probabilities do not depend on the check, nor on the features computed alongside.
    plain = dataclasses.replace(segmenter, ood=None, features_model=None)
    for a, b, c in zip(inference.segment(plain, images, volume=True), preds, held):
        np.testing.assert_allclose(a.prob, b.prob, atol=1e-6)
        assert np.array_equal(a.mask, c.mask) and a.tumour_probability == pytest.approx(c.tumour_probability)
        assert a.reliable and a.ood_score is None


def test_fit_segmenter_reliability_uses_tumour_and_clear_slices_as_classes(segmenter):
    from factories import phantom
    from mri_core.training.card import fit_segmenter_reliability

    x = np.stack([np.dstack([phantom(32, 32, seed=i)] * 3) for i in range(12)]).astype(np.float32)
    masks = np.zeros((12, 32, 32, 1), np.uint8)
    masks[::2, 10:20, 10:20] = 1
    record, det = fit_segmenter_reliability(segmenter.keras_model, x, masks, np.arange(8), np.arange(8, 12))
    assert set(record) == {"ood"} and record["ood"]["layers"] == R.feature_layers(segmenter.keras_model, "segmenter")
    assert len(det.means) == 2 and all(m.shape[0] == 2 for m in det.means)  # tumour / no tumour
    assert record["ood"]["validation_abstained"] <= 0.25
