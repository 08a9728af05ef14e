"""Fitting a trained model's reliability checks again (``scripts/fit_reliability.py``): for models
trained before the checks existed. Apart from ``card`` and ``classifier`` because it needs both
(the classifier's data, the card's fitting), and each of them must not import the other."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

from mri_core.cards import Reliability
from mri_core.models import MODEL_FILE, model_dir, read_card, write_card
from mri_core.tasks import get_task
from mri_core.training.card import fit_reliability, fit_segmenter_reliability
from mri_core.training.classifier import classifier_data


def refit_reliability(name: str, root: Path | None = None) -> Reliability:
    """Fit the reliability checks again for a trained model, on its own split (as its card records
    it), and write ``ood.npz`` and the card; for models trained before they existed."""
    card = read_card(name, root)
    model = keras.saving.load_model(model_dir(name, root) / MODEL_FILE, compile=False)
    if card.is_segmenter:
        from mri_core import data as D

        x, m, patients, _ = D.load_lgg(get_task(card.task).data_dir, card.preprocessing.to_json())
        is_val = np.isin(patients, list(card.split.val_patients))
        record, detector = fit_segmenter_reliability(model, x, m, np.flatnonzero(~is_val), np.flatnonzero(is_val))
    else:
        split = card.split
        args = argparse.Namespace(data_dir=None, no_cache=False, limit=0, seed=split.seed,
                                  val_fraction=split.val_fraction, extra_sources=split.extra_sources is not None)
        xtr, ytr, xva, *_ = classifier_data(get_task(card.task), card.preprocessing.to_json(), args)
        record, detector = fit_reliability(model, card.class_names, xtr, ytr, xva, card.validation.confusion)
    reliability = Reliability.from_json(record)
    detector.save(model_dir(name, root) / reliability.ood.file)
    write_card(name, replace(card, reliability=reliability), root)
    return reliability
