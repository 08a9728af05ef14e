"""The registry of trained models in ``models/<name>/``: a ``model.keras`` file and its ``card.json``.

The app, the training and evaluation CLIs, the batch scorer and the benchmarks reach a model
only through a ``Registry`` (or the module functions, which use the one on ``default_root()``). A card
(``mri_core.cards.Card``) holds every fact about its model, written once by ``mri_core.train``.
"""

from __future__ import annotations

import hashlib

import json
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mri_core.cards import Card

PROJECT_MODELS = Path(__file__).resolve().parent.parent / "models"
ROOT_ENV = "MRI_MODELS_DIR"  # another models folder (tests, a worker whose models/ sit elsewhere)
MODEL_FILE = "model.keras"
CARD_FILE = "card.json"


@dataclass(frozen=True)
class LoadedModel:
    """A trained model and its card. Shared between users: never mutate ``keras_model``."""

    name: str
    card: Card
    keras_model: Any
    path: Path
    ood: Any = None  # reliability.OodDetector, where the model has one (ood.npz beside it)
    features_model: Any = None  # (probabilities, features of the layers ``ood`` reads) in one pass
    weights_sha256: str = ""  # of the model file as loaded: which weights drew a result, whatever the card on disk says now

    def __post_init__(self):
        if not isinstance(self.card, Card):
            raise TypeError(f"LoadedModel takes a Card, not {type(self.card).__name__}")

    @property
    def task(self) -> str:
        return self.card.task

    @property
    def kind(self) -> str:
        return self.card.kind

    @property
    def class_names(self) -> list[str]:
        return list(self.card.class_names)

    @cached_property
    def _preprocessing(self) -> dict[str, Any]:
        return self.card.preprocessing.to_json()

    @property
    def preprocessing(self) -> dict[str, Any]:
        """The card's ``preprocessing`` as the dict ``preprocess.prepare`` takes (a copy)."""
        return dict(self._preprocessing)

    @property
    def temperature(self) -> float:
        return self.card.temperature

    @property
    def version(self) -> str:
        """The weights' short hash: the version a DICOM SEG or an audit row names the model by."""
        return self.weights_sha256[:12] or "unknown"


_load_lock = threading.Lock()  # one model built at a time, whichever registry asks


class Registry:
    """The models in one folder. Parsed cards are cached and read again when their file changes
    (training and the scripts rewrite cards)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._cards: dict[str, tuple[tuple[int, int], Card]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    def model_dir(self, name: str) -> Path:
        return self.root / name

    def list(self, task: str | None = None) -> list[str]:
        """Names of trained models (those with a card and a model file), optionally for one task."""
        if not self.root.is_dir():
            return []
        names = [d.name for d in sorted(self.root.iterdir()) if (d / CARD_FILE).exists() and (d / MODEL_FILE).exists()]
        return [n for n in names if task is None or self.read(n).task == task]

    def default(self, task: str) -> str:
        """The task's model marked ``"default": true`` in its card, else the first one."""
        names = self.list(task)
        if not names:
            raise ValueError(f"no trained model for task {task!r} in {self.root}")
        return next((n for n in names if self.read(n).default), names[0])

    def read(self, name: str) -> Card:
        """The model's card; an unknown name is refused with the known ones."""
        path = self.model_dir(name) / CARD_FILE
        try:
            st = path.stat()
        except FileNotFoundError:
            known = ", ".join(self.list()) or "none"
            raise ValueError(f"no model named {name!r} in {self.root}; known models: {known}") from None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._cards.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            card = Card.from_json(json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the card {path} cannot be read: {exc}") from exc
        with self._lock:
            self._cards[name] = (stamp, card)
        return card

    def write(self, name: str, card: Card | Mapping[str, Any]) -> Path:
        """Write the card (typed, or a dict as training builds it) to ``<root>/<name>/card.json``;
        a dict that is not a valid card is refused here, not when the app reads it."""
        data = (card if isinstance(card, Card) else Card.from_json(card)).to_json()
        path = self.model_dir(name) / CARD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._cards.pop(name, None)  # a rewrite within the clock's tick keeps the same mtime
            path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
        return path

    def load(self, name: str) -> LoadedModel:
        """Load a model and its card, and warm its compiled predict function once.

        Warming here (under a lock) means concurrent sessions never race to build it later.
        """
        import keras

        from mri_core import reliability

        card = self.read(name)
        path = self.model_dir(name) / MODEL_FILE
        ood_path = self.model_dir(name) / card.ood.file if card.ood else None
        zeros = np.zeros((1, *card.preprocessing.input_shape), np.float32)
        with _load_lock:
            weights_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
            km = keras.saving.load_model(path, compile=False)
            km.predict_on_batch(zeros)
            detector = features = None
            if ood_path is not None and ood_path.exists():
                detector = reliability.OodDetector.load(ood_path)
                features = reliability.features_model(km, list(card.ood.layers), card.ood.grid)
                features.predict_on_batch(zeros)
        return LoadedModel(name=name, card=card, keras_model=km, path=path, ood=detector, features_model=features,
                           weights_sha256=weights_sha256)

    def segmenter_for(self, grey: bool) -> tuple[str, str]:
        """(model name, why) for a tumour mask of an upload: a grey upload (one sequence, as a FLAIR
        export is) gets a model trained on that one sequence where there is one, since the
        three-sequence default sees only a third of what it was trained on; a colour upload (the three
        sequences as channels) gets the default."""
        default = self.default("lgg")
        if not grey:
            return default, f"The upload has three channels (pre-contrast, FLAIR, post-contrast), as {default} was trained on."
        for name in self.list("lgg"):
            card = self.read(name)
            if card.is_single_sequence:
                return name, (f"The upload is grey (one sequence), so {name}, trained on {card.preprocessing.sequence.upper()} "
                              f"slices alone, draws the mask; {default} needs the three sequences (pre-contrast, FLAIR, post-contrast).")
        return default, (f"The upload is grey (one sequence) but no one-sequence model is installed: {default} was trained "
                         "on three sequences and draws less accurate masks from one.")

    def file_mb(self, name: str) -> float:
        return (self.model_dir(name) / MODEL_FILE).stat().st_size / 2**20


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# --------------------------------------------------------------------------- the module functions
# Each is the Registry method on ``root``, or on ``default_root()`` (read at each call, so that setting
# $MRI_MODELS_DIR takes effect), with one Registry, and so one card cache, per folder.

_registries: dict[Path, Registry] = {}
_registries_lock = threading.Lock()


def default_root() -> Path:
    """The models folder: ``$MRI_MODELS_DIR`` where it is set, else the project's ``models/``."""
    return Path(os.environ.get(ROOT_ENV) or PROJECT_MODELS)


def registry(root: Path | str | None = None) -> Registry:
    """The registry of ``root`` (default ``default_root()``), one per folder in this process."""
    key = Path(root or default_root())
    with _registries_lock:
        return _registries.setdefault(key, Registry(key))


def model_dir(name: str, root: Path | None = None) -> Path:
    return registry(root).model_dir(name)


def read_card(name: str, root: Path | None = None) -> Card:
    """The model's card (shared and frozen: change it with ``dataclasses.replace`` and ``write_card``)."""
    return registry(root).read(name)


def write_card(name: str, card: Card | Mapping[str, Any], root: Path | None = None) -> Path:
    return registry(root).write(name, card)


def list_models(task: str | None = None, root: Path | None = None) -> list[str]:
    """Names of trained models (those with a card and a model file), optionally for one task."""
    return registry(root).list(task)


def default_model(task: str, root: Path | None = None) -> str:
    """The task's model marked ``"default": true`` in its card, else the first one."""
    return registry(root).default(task)


def segmenter_for(grey: bool, root: Path | None = None) -> tuple[str, str]:
    return registry(root).segmenter_for(grey)


def load(name: str, root: Path | None = None) -> LoadedModel:
    """Load a model and its card, and warm its compiled predict function once."""
    return registry(root).load(name)


def file_mb(name: str, root: Path | None = None) -> float:
    return registry(root).file_mb(name)
