"""How a tumour probability map becomes a mask: the slice's tumour probability, the main lesion of
a volume, the mask drawn, the presence rule chosen on validation and its scoring, and the
intensity fit a segmenter's card carries.

``inference.segment`` and the training monitor both call these, so checkpoints are chosen on the
masks the app draws.
"""

from __future__ import annotations

import numpy as np

from mri_core.cards import SegmentationRule
from mri_core.metrics import dice
from mri_core.preprocess import channel_p99, normalize_intensity

PRESENCE_CUT = 0.5  # a slice shows a tumour when its tumour probability reaches this


def is_present(tumour_probability):
    """The presence rule: a slice shows a tumour when its tumour probability reaches ``PRESENCE_CUT``
    (a bool for one probability, a bool array for an array of them)."""
    present = np.asarray(tumour_probability) >= PRESENCE_CUT
    return bool(present) if present.ndim == 0 else present
MAPS = "mean of the slice's and its left-right mirror's probability maps (inference.segmentation_maps)"


def tumour_probability(prob_map: np.ndarray, top_k: int) -> float:
    """Mean of the ``top_k`` most confident pixels: high only when a lesion-sized region is."""
    flat = prob_map.reshape(-1)
    k = int(min(max(top_k, 1), flat.size))
    return float(np.partition(flat, flat.size - k)[-k:].mean())


def keep_main_lesion(prob_maps: np.ndarray, present: np.ndarray, threshold: float) -> np.ndarray:
    """Zero the pixels of every detection outside the volume's main 3-D connected lesion: the one
    with the most tumour probability in total (the sum of its pixels' probabilities).

    ``prob_maps`` (slices, H, W) are one volume in slice order; ``present`` says which slices
    count as showing a tumour. A lower-grade glioma is one lesion, so detections not connected to
    it are false alarms. Summed probability rather than voxel count, because a false alarm is
    fainter than the tumour (the measurements behind both: docs/experiments.md).
    """
    from scipy import ndimage

    masks = (prob_maps >= threshold) & np.asarray(present, bool)[:, None, None]
    labels, n = ndimage.label(masks, structure=np.ones((3, 3, 3)))
    if n < 2:
        return prob_maps
    mass = np.bincount(labels.ravel(), weights=prob_maps.ravel())[1:]
    removed = masks & (labels != 1 + int(np.argmax(mass)))
    return np.where(removed, 0.0, prob_maps)


def postprocess(probs: np.ndarray, threshold: float, top_k: int, volume: bool) -> tuple[np.ndarray, np.ndarray]:
    """(probability maps, tumour probabilities) for the network's maps (slices, H, W): each slice
    scored with ``tumour_probability``; with ``volume`` (one volume in slice order) only its main
    connected lesion (``keep_main_lesion``) is kept and a slice whose detection was removed is scored again without it.
    ``segment`` and the training monitor both use it, so checkpoints are chosen as the app scores."""
    scores = np.asarray([tumour_probability(p, top_k) for p in probs])
    if volume and len(probs) > 1:
        probs = keep_main_lesion(probs, is_present(scores), threshold)
        scores = np.asarray([tumour_probability(p, top_k) for p in probs])
    return probs, scores


def lesion_mask(prob_maps: np.ndarray, scores, threshold: float) -> np.ndarray:
    """The masks drawn for maps (slices, H, W) with their tumour probabilities: pixels at or above
    ``threshold``, on slices judged to show a tumour only (scattered faint pixels are not a lesion)."""
    return (np.asarray(prob_maps) >= threshold) & is_present(np.asarray(scores))[:, None, None]


def presence_rule(probs: np.ndarray, mva: np.ndarray) -> SegmentationRule:
    """The tumour-presence rule chosen on validation from the network's maps ``probs`` (slices,
    H, W): how many of the most probable pixels are averaged into the slice's probability
    (``tumour_probability``)."""
    truth_present = mva.reshape(len(mva), -1).any(axis=1)
    best_k, best_acc = 16, -1.0
    for k in (4, 8, 16, 32, 64, 128):
        scores = np.asarray([tumour_probability(p, k) for p in probs])
        acc = float((is_present(scores) == truth_present).mean())
        if acc > best_acc:
            best_k, best_acc = k, acc
    return SegmentationRule(
        threshold=0.5,
        top_k=best_k,
        tumor_probability=f"mean of the {best_k} most probable pixels at model resolution (chosen on validation)",
        maps=MAPS,
    )


def per_patient_dice(pred: np.ndarray, truth: np.ndarray, patients: np.ndarray) -> float:
    """3-D Dice per patient (all slices together), averaged over patients."""
    return float(np.mean([dice(pred[patients == p], truth[patients == p]) for p in np.unique(patients)]))


def scored_patient_dice(probs: np.ndarray, truth: np.ndarray, patients: np.ndarray, rule: SegmentationRule) -> float:
    """``per_patient_dice`` of the masks the app would draw (``postprocess`` on each
    patient's slices as one volume, presence rule ``rule``), at model resolution: the figure
    ``evaluate`` reports, without reading the files again. Slices of a patient are in slice order."""
    pred = np.zeros(probs.shape, bool)
    for p in np.unique(patients):
        idx = np.flatnonzero(patients == p)
        maps, scores = postprocess(probs[idx], rule.threshold, rule.top_k, volume=True)
        pred[idx] = lesion_mask(maps, scores, rule.threshold)
    return per_patient_dice(pred, truth.reshape(probs.shape), patients)


def fit_intensity(x: np.ndarray, train_idx: np.ndarray, max_gain: float) -> dict:
    """The card's ``preprocessing.intensity``, fitted on the training slices ``x[train_idx]``
    (reference: the median over them of each channel's foreground 99th percentile,
    ``preprocess.channel_p99``); ``x``, already prepared at model size, is normalised with it in
    place: the same result as ``prepare()`` with the block, which applies it at model size."""
    p99 = np.stack([channel_p99(im) for im in x[train_idx]])
    spec = {
        "reference_p99": [round(float(v), 4) for v in np.nanmedian(p99, axis=0)],
        "max_gain": float(max_gain),
        "method": "each channel scaled so its foreground 99th percentile reaches the reference; gain between 1 and max_gain",
    }
    for i in range(len(x)):
        x[i] = normalize_intensity(x[i], spec["reference_p99"], max_gain)
    return spec
