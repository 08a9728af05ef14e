"""The registry of trained models in ``models/<name>/``: a ``model.keras`` file and its ``card.json``.

The app, the training and evaluation CLIs, the batch scorer and the benchmarks reach a model
only through ``list_models`` / ``load``. A card holds every fact about its model (task, class
names, preprocessing, temperature, split, metrics, training history), written once by
``mri_core.train``.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODELS_DIR = Path(os.environ.get("MRI_MODELS_DIR", Path(__file__).resolve().parent.parent / "models"))
MODEL_FILE = "model.keras"
CARD_FILE = "card.json"


@dataclass(frozen=True)
class LoadedModel:
    """A trained model and its card. Shared between users: never mutate ``keras_model``."""

    name: str
    card: dict[str, Any]
    keras_model: Any
    path: Path
    ood: Any = None  # reliability.OodDetector, where the model has one (ood.npz beside it)
    features_model: Any = None  # (probabilities, features of the layers ``ood`` reads) in one pass

    @property
    def task(self) -> str:
        return self.card["task"]

    @property
    def kind(self) -> str:
        return self.card["kind"]

    @property
    def class_names(self) -> list[str]:
        return list(self.card["class_names"])

    @property
    def preprocessing(self) -> dict[str, Any]:
        return dict(self.card["preprocessing"])

    @property
    def temperature(self) -> float:
        return float(self.card.get("calibration", {}).get("temperature", 1.0))


def model_dir(name: str, root: Path | None = None) -> Path:
    return Path(root or MODELS_DIR) / name


def read_card(name: str, root: Path | None = None) -> dict[str, Any]:
    path = model_dir(name, root) / CARD_FILE
    if not path.exists():
        known = ", ".join(list_models(root=root)) or "none"
        raise ValueError(f"no model named {name!r} in {Path(root or MODELS_DIR)}; known models: {known}")
    return json.loads(path.read_text())


def write_card(name: str, card: dict[str, Any], root: Path | None = None) -> Path:
    path = model_dir(name, root) / CARD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card, indent=2, default=_json_default) + "\n")
    return path


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def list_models(task: str | None = None, root: Path | None = None) -> list[str]:
    """Names of trained models (those with a card and a model file), optionally for one task."""
    base = Path(root or MODELS_DIR)
    names = []
    if base.is_dir():
        for d in sorted(base.iterdir()):
            if (d / CARD_FILE).exists() and (d / MODEL_FILE).exists():
                if task is None or json.loads((d / CARD_FILE).read_text()).get("task") == task:
                    names.append(d.name)
    return names


def default_model(task: str, root: Path | None = None) -> str:
    """The task's model marked ``"default": true`` in its card, else the first one."""
    names = list_models(task, root)
    if not names:
        raise ValueError(f"no trained model for task {task!r} in {Path(root or MODELS_DIR)}")
    for n in names:
        if read_card(n, root).get("default"):
            return n
    return names[0]


def is_single_sequence(card: dict[str, Any]) -> bool:
    """A segmenter trained on one grey sequence (its card's ``preprocessing.sequence``)."""
    return card.get("kind") == "segmenter" and int(card["preprocessing"]["channels"]) == 1 and "sequence" in card["preprocessing"]


def segmenter_for(grey: bool, root: Path | None = None) -> tuple[str, str]:
    """(model name, why) for a tumour mask of an upload: a grey upload (one sequence, as a FLAIR
    export is) gets a model trained on that one sequence where there is one, since the
    three-sequence default sees only a third of what it was trained on; a colour upload (the three
    sequences as channels) gets the default."""
    default = default_model("lgg", root)
    if grey:
        for name in list_models("lgg", root):
            card = read_card(name, root)
            if is_single_sequence(card):
                return name, (f"The upload is grey (one sequence), so {name}, trained on {card['preprocessing']['sequence'].upper()} "
                              f"slices alone, draws the mask; {default} needs the three sequences (pre-contrast, FLAIR, post-contrast).")
        return default, (f"The upload is grey (one sequence) but no one-sequence model is installed: {default} was trained "
                         "on three sequences and draws less accurate masks from one.")
    return default, f"The upload has three channels (pre-contrast, FLAIR, post-contrast), as {default} was trained on."


_load_lock = threading.Lock()


def load(name: str, root: Path | None = None) -> LoadedModel:
    """Load a model and its card, and warm its compiled predict function once.

    Warming here (under a lock) means concurrent sessions never race to build it later.
    """
    import keras

    from mri_core import reliability

    card = read_card(name, root)
    path = model_dir(name, root) / MODEL_FILE
    ood_spec = card.get("reliability", {}).get("ood")
    ood_path = model_dir(name, root) / ood_spec["file"] if ood_spec else None
    with _load_lock:
        km = keras.saving.load_model(path, compile=False)
        shape = (1,) + tuple(card["preprocessing"]["size"]) + (int(card["preprocessing"]["channels"]),)
        km.predict_on_batch(np.zeros(shape, np.float32))
        detector = features = None
        if ood_path is not None and ood_path.exists():
            detector = reliability.OodDetector.load(ood_path)
            features = reliability.features_model(km, ood_spec["layers"])
            features.predict_on_batch(np.zeros(shape, np.float32))
    return LoadedModel(name=name, card=card, keras_model=km, path=path, ood=detector, features_model=features)


def file_mb(name: str, root: Path | None = None) -> float:
    return (model_dir(name, root) / MODEL_FILE).stat().st_size / 2**20
