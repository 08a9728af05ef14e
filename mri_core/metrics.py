"""Metrics as plain functions over arrays (MONAI's habit): classification, calibration, masks."""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return m


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)}


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if y_true.size else float("nan")


def balanced_accuracy(y_true, y_pred, n_classes: int) -> float:
    """Mean recall over the classes present in y_true."""
    cm = confusion(y_true, y_pred, n_classes)
    present = cm.sum(axis=1) > 0
    return float(per_class(cm)["recall"][present].mean())


def macro_f1(y_true, y_pred, n_classes: int) -> float:
    """Mean F1 over the classes present in y_true."""
    cm = confusion(y_true, y_pred, n_classes)
    present = cm.sum(axis=1) > 0
    return float(per_class(cm)["f1"][present].mean())


def roc_curve(y_true_binary: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate), thresholds from high to low, ties merged."""
    y = np.asarray(y_true_binary, dtype=bool)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fps / neg], np.r_[0.0, tps / pos]


def auc(y_true_binary, scores) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y = np.asarray(y_true_binary, dtype=bool)
    if y.all() or (~y).all():
        return float("nan")
    fpr, tpr = roc_curve(y, scores)
    return float(np.trapezoid(tpr, fpr))


def auc_macro(y_true, probs: np.ndarray) -> float:
    """One-vs-rest AUC averaged over the classes present (and absent from some samples)."""
    y_true = np.asarray(y_true)
    values = [auc(y_true == c, probs[:, c]) for c in range(probs.shape[1])]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def ece(y_true, probs: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence, equal-width bins."""
    y_true = np.asarray(y_true)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            total += sel.mean() * abs(conf[sel].mean() - correct[sel].mean())
    return float(total)


def reliability(y_true, probs: np.ndarray, n_bins: int = 10) -> dict[str, list[float]]:
    """Per-bin mean confidence, accuracy and count, for a calibration plot."""
    y_true = np.asarray(y_true)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    out = {"confidence": [], "accuracy": [], "count": []}
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            out["confidence"].append(float(conf[sel].mean()))
            out["accuracy"].append(float(correct[sel].mean()))
            out["count"].append(int(sel.sum()))
    return out


def classification_report(y_true, probs: np.ndarray, class_names: list[str]) -> dict:
    """Everything ``mri_core.evaluate`` prints for a classifier, from labels and probabilities."""
    n = len(class_names)
    y_true = np.asarray(y_true, int)
    y_pred = probs.argmax(axis=1)
    cm = confusion(y_true, y_pred, n)
    pc = per_class(cm)
    return {
        "n": int(y_true.size),
        "accuracy": accuracy(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred, n),
        "macro_f1": macro_f1(y_true, y_pred, n),
        "auc_macro": auc_macro(y_true, probs),
        "ece": ece(y_true, probs),
        "per_class": {
            name: {k: (int(pc[k][i]) if k == "support" else float(pc[k][i])) for k in ("precision", "recall", "f1", "support")}
            for i, name in enumerate(class_names)
        },
        "confusion": cm.tolist(),
        "class_names": list(class_names),
    }


# --------------------------------------------------------------------------- masks


def dice(pred: np.ndarray, truth: np.ndarray, empty: float = 1.0) -> float:
    """Dice overlap of two boolean masks; ``empty`` when both are empty."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    denom = p.sum() + t.sum()
    return float(empty) if denom == 0 else float(2.0 * np.logical_and(p, t).sum() / denom)


def iou(pred: np.ndarray, truth: np.ndarray, empty: float = 1.0) -> float:
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    union = np.logical_or(p, t).sum()
    return float(empty) if union == 0 else float(np.logical_and(p, t).sum() / union)
