"""Measure a trained LGG model's validation figures again, on the original data, into its card.

``python -m scripts.rescore_card lgg_unet [--models DIR] [--data-dir LGG_DIR] [--intensity-max-gain 4]``

A model trained on a lent GPU saw a JPEG copy of the data (scripts/pack_for_device.py), and its
card's validation figures were measured on that copy. This chooses the presence rule and scores
the card's own validation patients again from the original folder, with the app's
preprocessing, and keeps the copy's figures under ``metrics.validation_on_training_copy``.

``--intensity-max-gain G`` first gives a model trained without it the intensity normalisation
that ``mri_core.train`` now applies (reference from the card's training patients only); the
figures measured before are kept under ``metrics.validation_without_intensity``.

``--keep-as KEY`` scores a card again after a change to how the app segments (the presence rule
is chosen again too), keeping the figures measured before under ``metrics.KEY``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from mri_core import data as D
from mri_core.cards import Intensity, report_from_json
from mri_core.io.folders import list_lgg
from mri_core.inference import segmentation_maps
from mri_core.models import LoadedModel, default_root, load, write_card
from mri_core.scoring import score_lgg
from mri_core.segmentation import fit_intensity, presence_rule
from mri_core.tasks import get_task
from mri_core.training.card import data_label


def rescore(name: str, models_dir: Path, data_dir: Path, intensity_max_gain: float = 0.0,
            keep_as: str | None = None) -> dict:
    loaded = load(name, models_dir)
    card = loaded.card
    reports = dict(card.metrics.reports)
    val_patients = set(card.split.val_patients)
    x, m, patients, _ = D.load_lgg(data_dir, loaded.preprocessing)
    va = np.isin(patients, sorted(val_patients))
    pre = card.preprocessing
    if intensity_max_gain > 1 and pre.intensity is None:
        reports["validation_without_intensity"] = card.validation
        spec = fit_intensity(x, ~va, intensity_max_gain)
        spec["note"] = "added after training by scripts/rescore_card.py: the network was trained without it"
        pre = replace(pre, intensity=Intensity.from_json(spec))
    elif keep_as:
        reports[keep_as] = card.validation
    else:
        reports.setdefault("validation_on_training_copy", card.validation)
    maps = segmentation_maps(lambda v: loaded.keras_model.predict(v, batch_size=64, verbose=0), x[va])
    card = replace(card, preprocessing=pre, segmentation=presence_rule(maps, m[va].astype(bool)))
    slices = [s for s in list_lgg(data_dir) if s.patient_id in val_patients]
    report = score_lgg(LoadedModel(name, card, loaded.keras_model, loaded.path), slices)
    metrics = replace(card.metrics, validation=report_from_json(report), reports=reports)
    write_card(name, replace(card, metrics=metrics, data=data_label(data_dir)), models_dir)
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("name")
    p.add_argument("--models", type=Path, default=default_root())
    p.add_argument("--data-dir", type=Path, default=get_task("lgg").data_dir)
    p.add_argument("--intensity-max-gain", type=float, default=0.0,
                   help="add intensity normalisation to a card that has none (1 or 0: leave the card's preprocessing)")
    p.add_argument("--keep-as", help="keep the card's current validation figures under metrics.KEY")
    args = p.parse_args(argv)
    report = rescore(args.name, args.models, args.data_dir, args.intensity_max_gain, args.keep_as)
    print(json.dumps({k: v for k, v in report.items() if k != "dice_per_patient"}, indent=1))


if __name__ == "__main__":
    main()
