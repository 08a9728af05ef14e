"""mri_core.segmentation: from a probability map to the mask drawn, the presence rule and its scoring,
the intensity fit."""

import numpy as np
import pytest

from mri_core import segmentation
from mri_core.metrics import dice
from mri_core.segmentation import per_patient_dice, scored_patient_dice


def test_tumour_probability_needs_a_region():
    p = np.zeros((32, 32), np.float32)
    p[0, 0] = 1.0
    assert segmentation.tumour_probability(p, 16) < 0.1
    p[:8, :8] = 0.9
    assert segmentation.tumour_probability(p, 16) > 0.85


def test_keep_main_lesion_removes_detections_not_connected_to_the_main_one():
    p = np.zeros((4, 16, 16), np.float32)
    p[0:3, 2:8, 2:8] = 0.9  # the lesion, over three slices
    p[1, 8, 8] = 0.8  # touches it diagonally: 26-connected, kept
    p[3, 12:15, 12:15] = 0.95  # alone on the last slice: removed
    p[0, 14, 0] = 0.4  # below the threshold: left as it is
    out = segmentation.keep_main_lesion(p, np.array([True, True, True, True]), 0.5)
    np.testing.assert_array_equal(out[0:3, 2:8, 2:8], p[0:3, 2:8, 2:8])
    assert out[1, 8, 8] == pytest.approx(0.8) and out[0, 14, 0] == pytest.approx(0.4)
    assert not out[3].any()
    # A slice judged tumour-free takes no part, so its pixels can neither win nor be removed.
    absent = segmentation.keep_main_lesion(p, np.array([False, False, False, True]), 0.5)
    np.testing.assert_array_equal(absent, p)


def test_keep_main_lesion_keeps_the_most_probability_not_the_most_voxels():
    p = np.zeros((3, 24, 24), np.float32)
    p[0:3, 2:8, 2:8] = 0.95  # the lesion: 108 voxels over three slices, 102.6 in probability
    p[1, 12:24, 12:24] = 0.55  # a faint false alarm on one slice: 144 voxels, 79.2 in probability
    out = segmentation.keep_main_lesion(p, np.ones(3, bool), 0.5)
    np.testing.assert_array_equal(out[0:3, 2:8, 2:8], p[0:3, 2:8, 2:8])
    assert not out[1, 12:24, 12:24].any()


def test_lesion_mask_only_on_slices_judged_to_show_a_tumour():
    maps = np.zeros((2, 8, 8), np.float32)
    maps[:, 2:4, 2:4] = 0.9
    masks = segmentation.lesion_mask(maps, [0.7, 0.3], 0.5)
    assert masks[0].sum() == 4 and not masks[1].any()


def test_postprocess_as_a_volume_rescores_the_slice_whose_detection_was_removed():
    p = np.zeros((3, 16, 16), np.float32)
    p[0:2, 2:8, 2:8] = 0.9  # the lesion, on slices 0-1
    p[2, 12:15, 12:15] = 0.8  # alone on slice 2
    maps, scores = segmentation.postprocess(p, 0.5, 4, volume=False)
    assert (scores >= segmentation.PRESENCE_CUT).all() and maps is p
    maps, scores = segmentation.postprocess(p, 0.5, 4, volume=True)
    assert list(scores >= segmentation.PRESENCE_CUT) == [True, True, False] and not maps[2].any()


def test_presence_rule_picks_the_top_k_that_separates_the_slices():
    probs = np.zeros((4, 16, 16), np.float32)
    probs[0, :4, :4] = 0.9  # a 16-pixel lesion
    probs[1, :2, :4] = 0.9  # an 8-pixel lesion
    probs[2, 0, :4] = 0.9  # four bright pixels on a tumour-free slice
    truth = np.zeros((4, 16, 16, 1), bool)
    truth[0, :4, :4] = truth[1, :2, :4] = True
    rule = segmentation.presence_rule(probs, truth)
    assert rule.top_k == 8 and rule.threshold == 0.5 and rule.maps == segmentation.MAPS


def test_fit_intensity_normalises_in_place_from_the_training_slices_only():
    from mri_core.preprocess import channel_p99

    rng = np.random.default_rng(0)
    x = np.zeros((4, 32, 32, 3), np.float32)
    x[:, 8:24, 8:24] = rng.uniform(0.2, 0.8, (4, 16, 16, 3)).astype(np.float32)
    x[3] *= 0.25  # a dark slice, not among the training ones
    dark = channel_p99(x[3])
    spec = segmentation.fit_intensity(x, np.array([0, 1, 2]), 4.0)
    assert spec["max_gain"] == 4.0 and len(spec["reference_p99"]) == 3
    np.testing.assert_allclose(channel_p99(x[3]), spec["reference_p99"], rtol=0.02)  # brightened to the reference
    assert (channel_p99(x[3]) > dark).all()


def test_checkpoint_metric_scores_the_masks_the_app_draws(intensity_segmenter):
    """Segmenter checkpoints are chosen on ``scored_patient_dice``: it must equal the Dice of the
    masks ``inference.segment(volume=True)`` draws, patient by patient, not of the raw maps."""
    from mri_core.inference import segment

    vol = np.zeros((8, 32, 32, 3), np.float32)
    truth = np.zeros((8, 32, 32), bool)
    vol[0:3, 4:16, 4:16, 0] = 0.9  # patient A: the lesion on slices 0-2 ...
    truth[0:3, 5:16, 4:16] = True
    vol[3, 24:30, 24:30, 0] = 0.95  # ... and a false alarm alone on slice 3 (removed as a volume)
    vol[5, 8:20, 8:20, 0] = 0.8  # patient B: a lesion on slice 5 ...
    truth[5, 8:18, 8:20] = True
    vol[6, 2:4, 2:4, 0] = 0.6  # ... and four faint pixels the presence rule (top 4 of 0.6) keeps
    vol[7, 30, 30, 0] = 0.7  # ... and one pixel it does not (top-4 mean 0.175)
    patients = np.array(["A"] * 4 + ["B"] * 4)
    probs = vol[..., 0]
    app = [segment(intensity_segmenter, list(vol[patients == p]), volume=True) for p in ("A", "B")]
    expected = np.mean([dice(np.stack([s.mask for s in preds]), truth[patients == p])
                        for p, preds in zip(("A", "B"), app)])
    rule = intensity_segmenter.card.segmentation_rule
    assert scored_patient_dice(probs, truth[..., None], patients, rule) == pytest.approx(expected)
    # The raw thresholded maps keep both false alarms: a lower figure, and not the one that counts.
    assert per_patient_dice(probs >= 0.5, truth, patients) < expected - 0.02
