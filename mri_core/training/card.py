"""The trained model's card: the record written beside ``model.keras`` (what was trained, on what
split, how, on which machine, with which figures), and a classifier's reliability record."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from mri_core.cards import Card, History
from mri_core.models import CARD_FILE, MODEL_FILE, LoadedModel, file_mb, write_card
from mri_core.tasks import SHARED_DATA, get_task
from mri_core.training.loop import Fitted

if TYPE_CHECKING:
    from mri_core.reliability import OodDetector



def data_label(data_dir: Path | str) -> str:
    """The training data as the card names it: relative to the shared data's parent
    (``data/lgg``) where it lies there, so a card names no machine's paths; else the folder as given."""
    path = Path(data_dir).resolve()
    try:
        return str(path.relative_to(SHARED_DATA.resolve().parent))
    except ValueError:
        return str(data_dir)

def machine() -> str:
    cpu = f"{platform.machine()} CPU, {os.cpu_count()} cores, {platform.system()}"
    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return f"{device.device_kind} GPU (Keras on JAX), {cpu}"
    return cpu


def interim_card(task, pre: dict) -> dict:
    """The card's first keys, all a model needs to run (``LoadedModel``): grown while training."""
    return {"task": task.name, "kind": task.kind, "class_names": list(task.class_names), "preprocessing": pre}


def interim_model(args, card: dict, model, path: Path) -> LoadedModel:
    """The model being trained with the card so far, to score it as the app runs it."""
    return LoadedModel(args.name, Card.from_json(card), model, path)


def finish(args, arch, card: dict, split: dict, fitted: Fitted, metrics: dict, detector=None) -> Card:
    """Save the model (and its out-of-distribution ``detector``) under ``args.out``, complete
    ``card`` with the architecture, split, figures and training record, and write it."""
    model, history = fitted.model, fitted.history
    out_dir = Path(args.out) / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / MODEL_FILE)
    from mri_core.explain import default_gradcam_layer

    record = carry_over_previous_run(args, Card.from_json({
        "name": args.name,
        **card,
        "architecture": arch.name,
        "description": arch.description,
        "gradcam_layer": arch.gradcam_layer or default_gradcam_layer(model),
        "params": int(model.count_params()),
        "default": bool(args.default),
        "split": split,
        "metrics": metrics,
        "history": {k: [float(v) for v in vals] for k, vals in history.items()},
        "training": training_record(args, history, fitted.seconds),
        "data": data_label(args.data_dir or get_task(args.task).data_dir),
    }))
    if detector is not None:
        detector.save(out_dir / record.ood.file)
    write_card(args.name, record, args.out)
    record = replace(record, file_mb=round(file_mb(args.name, args.out), 2))
    write_card(args.name, record, args.out)
    print(json.dumps({"name": args.name, "metrics": metrics, "seconds": round(fitted.seconds)}, indent=1), flush=True)
    return record


def training_record(args, history: dict, train_s: float) -> dict:
    """The card's ``training``: the command that reproduces the run, its length, machine and date."""
    return {
        "command": "python -m mri_core.train " + " ".join(args.argv),
        "epochs_run": len(next(iter(history.values()), [])),
        "seconds": round(train_s, 1),
        "machine": machine(),
        "date": _dt.date.today().isoformat(),
        "imagenet_weights": str(args.imagenet_weights) if args.imagenet_weights else None,
    }


def carry_over_previous_run(args, card: Card) -> Card:
    """A run resumed with --init-from models/<name>/model.keras keeps the earlier run's record:
    its history comes first in the curves, and its time and commands are added."""
    if not args.init_from:
        return card
    training = replace(card.training, resumed_from=str(args.init_from))
    previous = Path(args.init_from).parent / CARD_FILE
    if not previous.exists():
        return replace(card, training=training)
    old = Card.from_json(json.loads(previous.read_text()))
    earlier, before = old.history.curves if old.history else {}, old.training
    curves = {k: (*earlier.get(k, (None,) * before.epochs_run), *v) for k, v in card.history.curves.items()}
    training = replace(training, epochs_run=training.epochs_run + before.epochs_run,
                       seconds=round(training.seconds + before.seconds, 1),
                       earlier_commands=(*(before.earlier_commands or ()), before.command))
    return replace(card, history=History(curves), training=training)


def fit_ood(model, kind: str, xtr, ytr, n_classes: int, xva) -> tuple[dict, OodDetector]:
    """(the card's ``reliability.ood`` record, the detector) fitted on the training images as they are
    (``ytr``: a classifier's classes, a segmenter's tumour / no tumour), its threshold on the validation images'."""
    from mri_core import reliability as R

    layers, grid = R.feature_layers(model, kind), R.feature_grid(kind)
    fm = R.features_model(model, layers, grid)
    ftr, fva = R.probs_and_features(fm, xtr)[1], R.probs_and_features(fm, xva)[1]
    detector = R.fit_detector(ftr, ytr, n_classes, fva)
    read = f"each map's mean over {grid} x {grid} cells" if grid else "each map's mean"
    record = {"method": f"Mahalanobis distance of the features of two layers ({read}) to the nearest class mean "
                        "(shared covariance, Ledoit-Wolf), fitted on the training images; each scaled by its "
                        f"{R.VAL_QUANTILE:.0%} validation quantile, the larger compared with the {R.VAL_QUANTILE:.0%} "
                        "validation quantile of that",
              "layers": layers, "threshold": detector.threshold, "file": R.OOD_FILE, **({"grid": grid} if grid else {}),
              "validation_abstained": float((detector.distance(fva) > detector.threshold).mean())}
    return record, detector


def fit_reliability(model, class_names, xtr, ytr, xva, confusion) -> tuple[dict, OodDetector]:
    """(the card's ``reliability`` record, the fitted detector) of a classifier: ``fit_ood``, and
    which calls were better than chance on validation (``confusion``)."""
    from mri_core import reliability as R

    ood, detector = fit_ood(model, "classifier", xtr, ytr, len(class_names), xva)
    return {"ood": ood, "calls": R.call_reliability(confusion, class_names)}, detector


def fit_segmenter_reliability(model, x, masks, train_idx, val_idx) -> tuple[dict, OodDetector]:
    """A segmenter's ``reliability`` record: ``fit_ood`` with tumour / no tumour slices as the two classes."""
    has_tumour = np.asarray(masks).reshape(len(masks), -1).any(axis=1).astype(np.int64)
    ood, detector = fit_ood(model, "segmenter", x[train_idx], has_tumour[train_idx], 2, x[val_idx])
    return {"ood": ood}, detector
