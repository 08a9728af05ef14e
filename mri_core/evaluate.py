"""Score a model on a folder: ``python -m mri_core.evaluate TASK DATA_DIR [--model NAME] --json``.

This is how the hidden test sets are scored, so it walks exactly the app's path:
``io.read_image`` -> ``inference.classify`` / ``inference.segment`` (which call
``preprocess.prepare`` with the card's settings, TTA and temperature included).

Classifiers: DATA_DIR has one folder per class. LGG: DATA_DIR has the layout of
``../shared/data/lgg`` (``slices.csv`` with patient_id, image_path, mask_path, has_tumor).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from mri_core import data as D
from mri_core.io import UnreadableImage, read_image
from mri_core.metrics import auc, classification_report, dice, iou
from mri_core.models import LoadedModel, default_model, load

CHUNK = 64  # images read and scored at a time: bounded memory on large folders


def sample_slice(stack) -> np.ndarray:
    """The slice a single-label file stands for: its only slice, or the middle one of a stack."""
    return stack.slices[stack.n_slices // 2]


def classifier_predictions(loaded: LoadedModel, data_dir: Path):
    """(labels, calibrated TTA probabilities, paths, unreadable) for a class-per-folder set."""
    from mri_core.inference import classify

    folder = D.list_class_folder(data_dir, loaded.class_names)
    probs, labels, paths, unreadable = [], [], [], []
    for start in range(0, len(folder.paths), CHUNK):
        slices = []
        for path, y in zip(folder.paths[start : start + CHUNK], folder.labels[start : start + CHUNK]):
            try:
                slices.append(sample_slice(read_image(path.read_bytes(), path.name)))
            except UnreadableImage as exc:
                unreadable.append({"path": str(path.relative_to(data_dir)), "reason": str(exc)})
                continue
            labels.append(int(y))
            paths.append(path)
        probs.extend(p.probs for p in classify(loaded, slices))
    n = len(loaded.class_names)
    return np.asarray(labels, int), np.asarray(probs, float).reshape(-1, n), paths, unreadable


def score_classifier(loaded: LoadedModel, data_dir: Path) -> dict:
    labels, probs, _, unreadable = classifier_predictions(loaded, data_dir)
    report = classification_report(labels, probs, loaded.class_names)
    report["n_unreadable"] = len(unreadable)
    if unreadable:
        report["unreadable"] = unreadable[:20]
    return report


def score_lgg(loaded: LoadedModel, slices: list[D.LggSlice]) -> dict:
    """Per-patient 3-D Dice and IoU, Dice over tumour slices, and slice-level detection."""
    from mri_core.inference import segment

    by_patient: dict[str, list[D.LggSlice]] = {}
    for s in slices:
        by_patient.setdefault(s.patient_id, []).append(s)
    patient_dice, patient_iou, tumor_slice_dice = [], [], []
    scores, truth_present, pred_present = [], [], []
    for pid, rows in by_patient.items():
        images = [read_image(r.image_path.read_bytes(), r.image_path.name).slices[0] for r in rows]
        truths = [D.read_mask(r.mask_path) for r in rows]
        # One patient is one volume, in slice order: as the app segments a NIfTI file or series.
        preds = segment(loaded, images, volume=True)
        pm = np.stack([p.mask for p in preds])
        tm = np.stack(truths)
        patient_dice.append(dice(pm, tm))
        patient_iou.append(iou(pm, tm))
        for p, t in zip(preds, truths):
            has = bool(t.any())
            scores.append(p.tumor_probability)
            truth_present.append(has)
            pred_present.append(p.present)
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
        "dice_per_patient": {pid: float(d) for pid, d in zip(by_patient, patient_dice)},
    }


def evaluate(task: str, data_dir: Path, model: str | None = None) -> dict:
    name = model or default_model(task)
    loaded = load(name)
    if loaded.task != task:
        raise SystemExit(f"model {name} is for task {loaded.task}, not {task}")
    if loaded.kind == "segmenter":
        result = score_lgg(loaded, D.list_lgg(data_dir))
    else:
        result = score_classifier(loaded, Path(data_dir))
    return {"task": task, "model": name, "data_dir": str(data_dir), **result}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mri_core.evaluate", description="Score a trained model on a folder.")
    p.add_argument("task", choices=["brain_tumor", "alzheimer", "lgg"])
    p.add_argument("data_dir", type=Path)
    p.add_argument("--model", help="model name under models/ (default: the task's default model)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    result = evaluate(args.task, args.data_dir, args.model)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            if k not in ("confusion", "per_class", "dice_per_patient", "unreadable"):
                print(f"{k:>22}: {v}")
        if "per_class" in result:
            for c, m in result["per_class"].items():
                print(f"{c:>22}: precision {m['precision']:.3f} recall {m['recall']:.3f} f1 {m['f1']:.3f} n={m['support']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
