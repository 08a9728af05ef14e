"""Models side by side: evaluation on one folder, ROC curves, disagreements, CPU latency."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mri_core.io.folders import list_class_folder, list_lgg
from mri_core.scoring import classifier_predictions, score_lgg
from mri_core.metrics import auc, classification_report, reliability, roc_curve
from mri_core.models import LoadedModel


@dataclass
class ClassifierRun:
    name: str
    labels: np.ndarray
    probs: np.ndarray
    paths: list[Path]
    report: dict
    unreadable: list[dict] = field(default_factory=list)


def count_images(data_dir: Path, class_names: list[str] | None) -> int:
    """How many images an evaluation of ``data_dir`` will read: one sub-folder per class for a
    classifier (``class_names``), the LGG layout (slices.csv) for a segmenter (None)."""
    if class_names is None:
        return len(list_lgg(data_dir))
    return len(list_class_folder(data_dir, list(class_names)).paths)


def evaluate_classifiers(models: list[LoadedModel], data_dir: Path) -> list[ClassifierRun]:
    runs = []
    for m in models:
        labels, probs, paths, unreadable, _ = classifier_predictions(m, data_dir)
        runs.append(ClassifierRun(m.name, labels, probs, paths, classification_report(labels, probs, m.class_names), unreadable))
    return runs


def evaluate_segmenters(models: list[LoadedModel], data_dir: Path) -> dict[str, dict]:
    slices = list_lgg(data_dir)
    return {m.name: score_lgg(m, slices) for m in models}


def roc_per_class(labels: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict[str, dict]:
    """One-vs-rest ROC curve and AUC per class present on both sides."""
    out = {}
    for i, c in enumerate(class_names):
        y = labels == i
        if y.any() and (~y).any():
            fpr, tpr = roc_curve(y, probs[:, i])
            out[c] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": auc(y, probs[:, i])}
    return out


def calibration_curve(run: ClassifierRun) -> dict[str, list[float]]:
    return reliability(run.labels, run.probs)


def disagreements(runs: list[ClassifierRun], class_names: list[str]) -> list[dict]:
    """Images on which the models' top classes differ, with each model's call and the truth."""
    if len(runs) < 2:
        return []
    by_path = [{p: (int(pr.argmax()), float(pr.max())) for p, pr in zip(r.paths, r.probs)} for r in runs]
    truth = {p: int(y) for p, y in zip(runs[0].paths, runs[0].labels)}
    out = []
    for p in runs[0].paths:
        calls = [d.get(p) for d in by_path]
        if any(c is None for c in calls) or len({c[0] for c in calls}) == 1:
            continue
        out.append({"path": p, "truth": class_names[truth[p]],
                    "calls": {r.name: f"{class_names[c[0]]} ({c[1]:.0%})" for r, c in zip(runs, calls)}})
    return out


def cpu_latency_ms(model: LoadedModel, repeats: int = 20) -> float:
    """Median single-image forward time through the compiled predict function."""
    x = np.zeros((1, *model.card.preprocessing.input_shape), np.float32)
    model.keras_model.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.keras_model.predict_on_batch(x)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))
