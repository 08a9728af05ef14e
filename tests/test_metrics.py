"""mri_core.metrics against hand-worked cases and scikit-learn."""

import numpy as np
import pytest

from mri_core import metrics as M


def test_confusion_and_per_class():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    cm = M.confusion(y, p, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    pc = M.per_class(cm)
    assert pc["recall"].tolist() == [0.5, 1.0, 0.5]
    assert M.accuracy(y, p) == pytest.approx(4 / 6)
    assert M.balanced_accuracy(y, p, 3) == pytest.approx(2 / 3)


def test_against_sklearn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) + np.eye(4)[y] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = probs.argmax(1)
    assert M.balanced_accuracy(y, pred, 4) == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert M.macro_f1(y, pred, 4) == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert M.auc_macro(y, probs) == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert M.auc(y == 1, probs[:, 1]) == pytest.approx(skm.roc_auc_score(y == 1, probs[:, 1]))


def test_auc_with_ties_and_one_class():
    assert M.auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert np.isnan(M.auc([1, 1], [0.2, 0.9]))


def test_ece_perfect_and_overconfident():
    y = np.array([0, 1, 0, 1])
    perfect = np.eye(2)[y]
    assert M.ece(y, perfect) == pytest.approx(0.0)
    wrong = np.eye(2)[1 - y] * 0.98 + 0.01
    assert M.ece(y, wrong) == pytest.approx(0.99)


def test_report_keys():
    y = np.array([0, 1, 2, 3])
    r = M.classification_report(y, np.eye(4)[y], ["a", "b", "c", "d"])
    assert {"n", "accuracy", "balanced_accuracy", "macro_f1", "auc_macro", "ece", "per_class", "confusion", "class_names"} <= set(r)
    assert r["accuracy"] == 1.0 and r["per_class"]["a"]["support"] == 1


def test_dice_iou():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:5] = True
    b[:, :5] = True
    assert M.dice(a, b) == pytest.approx(0.5)
    assert M.iou(a, b) == pytest.approx(25 / 75)
    assert M.dice(np.zeros(4), np.zeros(4)) == 1.0
    assert M.dice(a, np.zeros_like(a)) == 0.0
