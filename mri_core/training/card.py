"""The trained model's card: the record written beside ``model.keras`` (what was trained, on what
split, how, on which machine, with which figures), and a classifier's reliability record."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

import keras

from mri_core.models import MODEL_FILE, file_mb, write_card
from mri_core.tasks import get_task
from mri_core.training.loop import Fitted

if TYPE_CHECKING:
    from mri_core.reliability import OodDetector


def machine() -> str:
    cpu = f"{platform.machine()} CPU, {os.cpu_count()} cores, {platform.system()}"
    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return f"{device.device_kind} GPU (Keras on JAX), {cpu}"
    return cpu


def finish(args, arch, card: dict, split: dict, fitted: Fitted, metrics: dict, detector=None) -> dict:
    """Save the model (and its out-of-distribution ``detector``) under ``args.out``, complete
    ``card`` with the architecture, split, figures and training record, and write it."""
    model, history = fitted.model, fitted.history
    out_dir = Path(args.out) / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / MODEL_FILE)
    if detector is not None:
        detector.save(out_dir / card["reliability"]["ood"]["file"])
    from mri_core.explain import default_gradcam_layer

    card = {
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
        "data": str(args.data_dir or get_task(card["task"]).data_dir).split("shared/")[-1],
    }
    carry_over_previous_run(args, card)
    write_card(args.name, card, args.out)
    card["file_mb"] = round(file_mb(args.name, args.out), 2)
    write_card(args.name, card, args.out)
    print(json.dumps({"name": args.name, "metrics": metrics, "seconds": round(fitted.seconds)}, indent=1), flush=True)
    return card


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


def carry_over_previous_run(args, card: dict) -> None:
    """A run resumed with --init-from models/<name>/model.keras keeps the earlier run's record:
    its history comes first in the curves, and its time and commands are added."""
    if not args.init_from:
        return
    previous = Path(args.init_from).parent / "card.json"
    card["training"]["resumed_from"] = str(args.init_from)
    if not previous.exists():
        return
    old = json.loads(previous.read_text())
    for key, values in card["history"].items():
        card["history"][key] = old.get("history", {}).get(key, [None] * old["training"]["epochs_run"]) + values
    t = card["training"]
    t["epochs_run"] += old["training"]["epochs_run"]
    t["seconds"] = round(t["seconds"] + old["training"]["seconds"], 1)
    t["earlier_commands"] = old["training"].get("earlier_commands", []) + [old["training"]["command"]]


def fit_reliability(model, card: dict, xtr, ytr, xva, confusion) -> tuple[dict, OodDetector]:
    """(the card's ``reliability`` record, the fitted detector): the out-of-distribution detector
    on the penultimate features of the training images as they are, its threshold on the
    validation images', and which calls were better than chance on validation (``confusion``)."""
    from mri_core import reliability as R

    layers = R.feature_layers(model)
    fm = R.features_model(model, layers)
    ftr, fva = R.probs_and_features(fm, xtr)[1], R.probs_and_features(fm, xva)[1]
    detector = R.fit_detector(ftr, ytr, len(card["class_names"]), fva)
    record = {
        "ood": {"method": "Mahalanobis distance of the features of an early layer and of the penultimate pool to the "
                          "nearest class mean (shared covariance, Ledoit-Wolf), fitted on the training images; each "
                          f"scaled by its {R.VAL_QUANTILE:.0%} validation quantile, the larger compared with the "
                          f"{R.VAL_QUANTILE:.0%} validation quantile of that",
                "layers": layers, "threshold": detector.threshold, "file": R.OOD_FILE,
                "validation_abstained": float((detector.distance(fva) > detector.threshold).mean())},
        "calls": R.call_reliability(confusion, card["class_names"]),
    }
    return record, detector


def refit_reliability(name: str, root: Path | None = None) -> dict:
    """Fit ``fit_reliability`` again for a trained classifier, on its own split (as its card
    records it), and write ``ood.npz`` and the card; for models trained before it existed."""
    from mri_core.models import model_dir, read_card
    from mri_core.training.classifier import classifier_data  # it fits the reliability record itself

    card = read_card(name, root)
    split = card["split"]
    args = argparse.Namespace(data_dir=None, no_cache=False, limit=0, seed=split["seed"],
                              val_fraction=split["val_fraction"], extra_sources="extra_sources" in split)
    xtr, ytr, xva, _, _, _ = classifier_data(get_task(card["task"]), card["preprocessing"], args)
    model = keras.saving.load_model(model_dir(name, root) / MODEL_FILE, compile=False)
    card["reliability"], detector = fit_reliability(model, card, xtr, ytr, xva, card["metrics"]["validation"]["confusion"])
    detector.save(model_dir(name, root) / card["reliability"]["ood"]["file"])
    write_card(name, card, root)
    return card["reliability"]
