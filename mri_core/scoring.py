"""Scoring a model on a folder the way the app predicts: ``io.read_image`` ->
``inference.classify`` / ``inference.segment`` (which call ``preprocess.prepare`` with the card's
settings, TTA and temperature included). ``evaluate`` (the CLI), ``compare`` and training use it.

Classifiers: the folder has one sub-folder per class. LGG: the layout of ``../shared/data/lgg``
(``slices.csv`` with patient_id, image_path, mask_path, has_tumor).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mri_core.io import UnreadableImage, read_image
from mri_core.io.folders import LGG_CHANNELS, LggSlice, lgg_channel, list_class_folder, list_lgg, read_mask, sample_slice
from mri_core.metrics import auc, classification_report, dice, iou
from mri_core.models import LoadedModel, default_model, load

CHUNK = 64  # images read and scored at a time: bounded memory on large folders


def classifier_predictions(loaded: LoadedModel, data_dir: Path):
    """(labels, calibrated TTA probabilities, paths, unreadable, reliable) for a class-per-folder
    set; ``reliable`` is False where the app would abstain (``ClassPrediction.reliable``)."""
    from mri_core.inference import classify

    folder = list_class_folder(data_dir, loaded.class_names)
    probs, labels, paths, unreadable, reliable = [], [], [], [], []
    for start in range(0, len(folder.paths), CHUNK):
        slices, modalities = [], []
        for path, y in zip(folder.paths[start : start + CHUNK], folder.labels[start : start + CHUNK]):
            try:
                stack = read_image(path.read_bytes(), path.name)
            except UnreadableImage as exc:
                unreadable.append({"path": str(path.relative_to(data_dir)), "reason": str(exc)})
                continue
            slices.append(sample_slice(stack))
            modalities.append(stack.modality)  # as the app judges an upload: a CT file is abstained on
            labels.append(int(y))
            paths.append(path)
        for p in classify(loaded, slices, modality=modalities):
            probs.append(p.probs)
            reliable.append(p.reliable)
    n = len(loaded.class_names)
    return np.asarray(labels, int), np.asarray(probs, float).reshape(-1, n), paths, unreadable, np.asarray(reliable, bool)


def score_classifier(loaded: LoadedModel, data_dir: Path) -> dict:
    labels, probs, _, unreadable, reliable = classifier_predictions(loaded, data_dir)
    report = classification_report(labels, probs, loaded.class_names)
    # What the app shows: a call only where it does not abstain.
    report["abstained"] = float((~reliable).mean()) if reliable.size else 0.0
    made = reliable & (labels >= 0)
    report["accuracy_on_calls_made"] = float((probs[made].argmax(1) == labels[made]).mean()) if made.any() else None
    report["n_unreadable"] = len(unreadable)
    if unreadable:
        report["unreadable"] = unreadable[:20]
    return report


def score_lgg(loaded: LoadedModel, slices: list[LggSlice], channel: str | None = None) -> dict:
    """Per-patient 3-D Dice and IoU, Dice over tumour slices, slice-level detection, and the share of
    slices the app would say it cannot judge (every mask is scored, held back or not).
    ``channel``: give the model only that sequence of each slice, grey (as a one-sequence upload)."""
    from mri_core.inference import segment

    by_patient: dict[str, list[LggSlice]] = {}
    for s in slices:
        by_patient.setdefault(s.patient_id, []).append(s)
    patient_dice, patient_iou, tumor_slice_dice = [], [], []
    scores, truth_present, pred_present, held = [], [], [], []
    for pid, rows in by_patient.items():
        images = [read_image(r.image_path.read_bytes(), r.image_path.name).slices[0] for r in rows]
        if channel:
            images = [lgg_channel(im, LGG_CHANNELS.index(channel)) for im in images]
        truths = [read_mask(r.mask_path) for r in rows]
        # One patient is one volume, in slice order: as the app segments a NIfTI file or series.
        preds = segment(loaded, images, volume=True)
        pm = np.stack([p.mask for p in preds])
        tm = np.stack(truths)
        patient_dice.append(dice(pm, tm))
        patient_iou.append(iou(pm, tm))
        for p, t in zip(preds, truths):
            has = bool(t.any())
            scores.append(p.tumour_probability)
            truth_present.append(has)
            pred_present.append(p.present)
            held.append(not p.reliable)
            if has:
                tumor_slice_dice.append(dice(p.mask, t))
    truth_present = np.asarray(truth_present)
    pred_present = np.asarray(pred_present)
    return {
        "n_patients": len(by_patient),
        "n_slices": int(len(truth_present)),
        "dice_patient_mean": float(np.mean(patient_dice)),
        "dice_tumor_slices": float(np.mean(tumor_slice_dice)) if tumor_slice_dice else float("nan"),
        "iou": float(np.mean(patient_iou)),
        "detection_auc": auc(truth_present, np.asarray(scores)),
        "detection_accuracy": float((truth_present == pred_present).mean()),
        "false_positive_slices": int((pred_present & ~truth_present).sum()),
        "false_negative_slices": int((~pred_present & truth_present).sum()),
        "abstained": float(np.mean(held)) if held else 0.0,  # slices unlike the training slices (masks scored all the same)
        "dice_per_patient": {pid: float(d) for pid, d in zip(by_patient, patient_dice)},
    }


def evaluate(task: str, data_dir: Path, model: str | None = None, channel: str | None = None) -> dict:
    """The report ``python -m mri_core.evaluate TASK DATA_DIR`` prints: ``model``, or the one the app
    would choose, scored on ``data_dir``. Raises ``ValueError`` for a model of another task."""
    from mri_core.models import segmenter_for

    # Without --model, the model the app would choose: a grey (one-sequence) input gets a one-sequence model.
    name = model or (segmenter_for(grey=channel is not None)[0] if task == "lgg" else default_model(task))
    loaded = load(name)
    if loaded.task != task:
        raise ValueError(f"model {name} is for task {loaded.task}, not {task}")
    if loaded.kind == "segmenter":
        result = score_lgg(loaded, list_lgg(data_dir), channel)
    else:
        result = score_classifier(loaded, Path(data_dir))
    return {"task": task, "model": name, "data_dir": str(data_dir), **({"channels": channel} if channel else {}), **result}
