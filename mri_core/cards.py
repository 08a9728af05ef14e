"""Typed model cards: ``models/<name>/card.json`` as frozen dataclasses.

A card holds every fact about its model. Each part has ``from_json(dict)`` and ``to_json() -> dict``;
``Card.from_json(d).to_json() == d`` for any card, old or new: keys a part does not name are kept
in its ``extra``, and the keys come back in the order they were read, so a card rewritten by a
script differs from the one it read only where a value changed.
"""

from __future__ import annotations

import copy
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, ClassVar, Mapping

__all__ = [
    "Calibration", "CallRecord", "Card", "ClassifierReport", "History", "InputStats", "Intensity", "Metrics",
    "OodSpec", "Preprocessing", "Record", "Reliability", "SegmentationRule", "SegmenterReport", "SourceFigures",
    "Split", "TrainingRecord", "Uncertainty", "WeightAverage", "report_from_json",
]


# --------------------------------------------------------------------------- field kinds
# How a field is read from and written to JSON, in its metadata: ``load``/``dump`` convert a non-null
# value; ``always`` writes a freshly built record's field even when it is None; ``part`` marks a nested
# record (None means absent, never null); ``json=False`` keeps a field out of the card's keys.


def _value(default: Any = None, *, always: bool = False) -> Any:
    return field(default=default, metadata={"always": always})


def _required(**meta: Any) -> Any:
    return field(metadata=meta)


def _tuple(*, required: bool = False) -> Any:
    meta = {"load": tuple, "dump": list}
    return field(metadata=meta) if required else field(default=None, metadata=meta)


def _raw(default: Any = None) -> Any:
    """A free-form JSON value (a confusion matrix, per-class figures): copied in and out."""
    return field(default=default, metadata={"load": copy.deepcopy, "dump": copy.deepcopy})


def _part(load: Callable[[Any], Any], *, required: bool = False) -> Any:
    meta = {"load": load, "dump": lambda v: v.to_json(), "part": True}
    return field(metadata=meta) if required else field(default=None, metadata=meta)


def _parts(cls: type) -> Any:
    """A JSON object of records of one kind, by key (per-class calls, per-source figures)."""
    return field(default=None, metadata={"load": lambda d: {k: cls.from_json(v) for k, v in d.items()},
                                         "dump": lambda d: {k: v.to_json() for k, v in d.items()}})


def _is_required(f) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


# --------------------------------------------------------------------------- the base


@dataclass(frozen=True, kw_only=True)
class Record:
    """A JSON object with named fields. ``extra`` keeps the keys the class does not name;
    ``key_order`` the keys as read (None for a record built in code), so ``to_json`` gives them back."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    key_order: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    _BASE: ClassVar[tuple[str, ...]] = ("extra", "key_order")

    @classmethod
    def _json_fields(cls) -> dict[str, Any]:
        return {f.name: f for f in fields(cls) if f.name not in cls._BASE and f.metadata.get("json", True)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]):
        known = cls._json_fields()
        missing = [n for n, f in known.items() if _is_required(f) and n not in d]
        if missing:
            raise ValueError(f"{cls.__name__} lacks {', '.join(missing)}")
        values = {n: _load(f, d[n]) for n, f in known.items() if n in d}
        extra = {k: copy.deepcopy(v) for k, v in d.items() if k not in known}
        return cls(**values, **cls._more_from_json(extra), extra=extra, key_order=tuple(d))

    @classmethod
    def _more_from_json(cls, extra: dict[str, Any]) -> dict[str, Any]:
        """Fields a subclass takes out of ``extra`` itself (``Metrics.reports``); none here."""
        return {}

    def _more_json(self) -> dict[str, Any]:
        """The JSON of those fields, by key."""
        return {}

    def to_json(self) -> dict[str, Any]:
        known, more = self._json_fields(), self._more_json()
        read = self.key_order or ()
        out: dict[str, Any] = {}
        for k in read:
            if k in known:
                self._emit(out, known[k], present=True)
            elif k in more:
                out[k] = more[k]
            elif k in self.extra:
                out[k] = copy.deepcopy(self.extra[k])
        for n, f in known.items():
            if n not in read:
                self._emit(out, f, present=False)
        out.update({k: v for k, v in more.items() if k not in out})
        out.update({k: copy.deepcopy(v) for k, v in self.extra.items() if k not in out})
        return out

    def _emit(self, out: dict[str, Any], f, present: bool) -> None:
        """Write field ``f``: a key that was read comes back (null too, but not a removed part); one
        that was not read is added when it was changed from its default, or, in a record built in
        code, when it has a value (or is ``always`` written)."""
        v = getattr(self, f.name)
        if present:
            keep = v is not None or not f.metadata.get("part")
        elif self.key_order is None:
            keep = v is not None or f.metadata.get("always", False)
        else:
            keep = v is not None and (f.default is MISSING or v != f.default)
        if keep:
            out[f.name] = _dump(f, v)


def _load(f, v: Any) -> Any:
    load = f.metadata.get("load")
    return load(v) if load is not None and v is not None else v


def _dump(f, v: Any) -> Any:
    dump = f.metadata.get("dump")
    return dump(v) if dump is not None and v is not None else v


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True, kw_only=True)
class Intensity(Record):
    """Dark slices lifted to the training level: each channel's foreground 99th percentile is
    scaled towards ``reference_p99``, by a gain between 1 and ``max_gain``."""

    reference_p99: tuple[float, ...] = _tuple(required=True)
    max_gain: float = _required()
    method: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Preprocessing(Record):
    """How a slice becomes the model's input (``preprocess.prepare``)."""

    crop: bool = _value(False, always=True)
    size: tuple[int, int] = _tuple(required=True)
    channels: int = _required()
    scale: str = _value("[0, 1]", always=True)
    source_channel: int | None = None  # a one-sequence model given a three-sequence slice takes this channel
    sequence: str | None = None  # the one sequence a one-channel segmenter was trained on ("flair")
    intensity: Intensity | None = _part(Intensity.from_json)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one model input."""
        return (int(self.size[0]), int(self.size[1]), int(self.channels))


# --------------------------------------------------------------------------- what training fitted


@dataclass(frozen=True, kw_only=True)
class Calibration(Record):
    temperature: float = _required()
    method: str | None = None


@dataclass(frozen=True, kw_only=True)
class SegmentationRule(Record):
    """How a probability map becomes a mask and a tumour call; the defaults are those a card
    without the block gets."""

    threshold: float = _value(0.5, always=True)
    top_k: int = _value(16, always=True)
    tumor_probability: str | None = None
    maps: str | None = None


@dataclass(frozen=True, kw_only=True)
class InputStats(Record):
    """Mean and spread of the training slices' mean grey level: a far-off upload is warned about."""

    mean: float = _required()
    std: float = _required()


@dataclass(frozen=True, kw_only=True)
class Uncertainty(Record):
    method: str | None = None


@dataclass(frozen=True, kw_only=True)
class WeightAverage(Record):
    """The mean of the last epochs' weights, and whether it was kept over the best epoch; the
    figure it was judged on sits in ``extra`` under the monitor's name."""

    epochs_averaged: int = _required()
    kept: bool = _required()
    from_decay: float | None = None
    best_single_epoch: float | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class OodSpec(Record):
    """The out-of-distribution detector: the layers it reads, its threshold and its file beside the model."""

    layers: tuple[str, ...] = _tuple(required=True)
    threshold: float = _required()
    file: str = _required()
    grid: int | None = None  # feature maps averaged over grid x grid cells; None: over the whole slice
    method: str | None = None
    validation_abstained: float | None = None


@dataclass(frozen=True, kw_only=True)
class CallRecord(Record):
    """How often one class's calls were right on validation, against chance."""

    calls: int = _required()
    precision: float = _required()
    chance: float = _required()
    better_than_chance: bool = _required()
    precision_lower: float | None = None


@dataclass(frozen=True, kw_only=True)
class Reliability(Record):
    ood: OodSpec | None = _part(OodSpec.from_json)
    calls: dict[str, CallRecord] | None = _parts(CallRecord)


# --------------------------------------------------------------------------- the record of training


@dataclass(frozen=True, kw_only=True)
class Split(Record):
    """How the data was split into training and validation."""

    kind: str = _required()
    seed: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    val_fraction: float | None = None
    n_groups: int | None = None
    n_val_groups: int | None = None
    n_train_patients: int | None = None
    val_patients: tuple[str, ...] | None = _tuple()
    extra_sources: dict[str, Any] | None = _raw()


@dataclass(frozen=True, kw_only=True)
class TrainingRecord(Record):
    """The command that trained the model, how long it ran and where."""

    command: str = _required()
    epochs_run: int = _required()
    seconds: float = _required()
    machine: str | None = None
    date: str | None = None
    imagenet_weights: str | None = _value(None, always=True)
    resumed_from: str | None = None
    earlier_commands: tuple[str, ...] | None = _tuple()


@dataclass(frozen=True)
class History:
    """Training curves, one list per logged figure (None where an epoch did not log it)."""

    curves: dict[str, tuple[float | None, ...]]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> History:
        return cls({k: tuple(v) for k, v in d.items()})

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.curves.items()}

    @property
    def epochs(self) -> int:
        return max((len(v) for v in self.curves.values()), default=0)


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True, kw_only=True)
class ClassifierReport(Record):
    """A classifier's figures on a labelled set (``metrics.classification_report``)."""

    kind: ClassVar[str] = "classifier"

    n: int | None = None
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    macro_f1: float | None = None
    auc_macro: float | None = None
    ece: float | None = None
    per_class: dict[str, dict[str, float]] | None = _raw()
    confusion: list[list[int]] | None = _raw()
    class_names: tuple[str, ...] | None = _tuple()


@dataclass(frozen=True, kw_only=True)
class SegmenterReport(Record):
    """A segmenter's figures on held-out patients (``evaluate.score_lgg``)."""

    kind: ClassVar[str] = "segmenter"

    n_patients: int | None = None
    n_slices: int | None = None
    dice_patient_mean: float | None = None
    dice_tumor_slices: float | None = None
    iou: float | None = None
    detection_auc: float | None = None
    detection_accuracy: float | None = None
    false_positive_slices: int | None = None
    false_negative_slices: int | None = None
    abstained: float | None = None  # share of slices the model cannot judge (``SegPrediction.reliable`` False)
    dice_per_patient: dict[str, float] | None = _raw()


Report = ClassifierReport | SegmenterReport
_SEGMENTER_KEYS = ("dice_patient_mean", "n_slices", "n_patients")


def report_from_json(d: Mapping[str, Any]) -> Report:
    """A segmenter's report where it has a segmenter's figures, else a classifier's."""
    return (SegmenterReport if any(k in d for k in _SEGMENTER_KEYS) else ClassifierReport).from_json(d)


@dataclass(frozen=True, kw_only=True)
class SourceFigures(Record):
    """Tumour-or-not figures on one other source (``metrics.cross_source``), or their summary."""

    n: int | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    abstained: float | None = None
    wrong_abstained_or_warned: float | None = None
    n_tumour: int | None = None
    n_tumour_free: int | None = None
    split: str | None = None


@dataclass(frozen=True, kw_only=True)
class Metrics(Record):
    """``validation`` (the figures every page quotes), other reports named ``validation_*`` (the same
    split scored another way, or with other sources) in ``reports``, and ``cross_source``."""

    validation: Report | None = _part(report_from_json)
    cross_source: dict[str, SourceFigures] | None = _parts(SourceFigures)
    note: str | None = None
    reports: dict[str, Report] = field(default_factory=dict, metadata={"json": False})

    _BASE: ClassVar[tuple[str, ...]] = ("extra", "key_order", "reports")

    @classmethod
    def _more_from_json(cls, extra: dict[str, Any]) -> dict[str, Any]:
        names = [k for k, v in extra.items() if k.startswith("validation") and isinstance(v, dict)]
        return {"reports": {k: report_from_json(extra.pop(k)) for k in names}}

    def _more_json(self) -> dict[str, Any]:
        return {k: r.to_json() for k, r in self.reports.items()}

    @property
    def cross_source_summary(self) -> SourceFigures | None:
        return (self.cross_source or {}).get("summary")

    @property
    def other_sources(self) -> dict[str, SourceFigures]:
        """The per-source blocks of ``cross_source``, without its summary."""
        return {k: v for k, v in (self.cross_source or {}).items() if k != "summary"}


# --------------------------------------------------------------------------- the card


@dataclass(frozen=True, kw_only=True)
class Card(Record):
    """Everything known about one trained model: what it reads, what it was fitted with, how it
    was trained and how well it did. ``task``, ``kind``, ``class_names`` and ``preprocessing``
    are what any card needs; the rest is written by ``mri_core.train`` and the scripts."""

    name: str | None = None
    task: str = _required()
    kind: str = _required()  # "classifier" or "segmenter"
    class_names: tuple[str, ...] = _tuple(required=True)
    preprocessing: Preprocessing = _part(Preprocessing.from_json, required=True)
    weight_average: WeightAverage | None = _part(WeightAverage.from_json)
    calibration: Calibration | None = _part(Calibration.from_json)
    segmentation: SegmentationRule | None = _part(SegmentationRule.from_json)
    input_stats: InputStats | None = _part(InputStats.from_json)
    uncertainty: Uncertainty | None = _part(Uncertainty.from_json)
    reliability: Reliability | None = _part(Reliability.from_json)
    architecture: str | None = None
    description: str | None = None
    gradcam_layer: str | None = None
    params: int | None = None
    default: bool = _value(False, always=True)
    default_reason: str | None = None
    split: Split | None = _part(Split.from_json)
    metrics: Metrics | None = _part(Metrics.from_json)
    history: History | None = _part(History.from_json)
    training: TrainingRecord | None = _part(TrainingRecord.from_json)
    data: str | None = None
    file_mb: float | None = None

    @property
    def is_segmenter(self) -> bool:
        return self.kind == "segmenter"

    @property
    def temperature(self) -> float:
        """The calibration temperature; 1.0 (none) for a card without one."""
        return float(self.calibration.temperature) if self.calibration else 1.0

    @property
    def validation(self) -> Report | None:
        """The figures measured on the validation split."""
        return self.metrics.validation if self.metrics else None

    @property
    def segmentation_rule(self) -> SegmentationRule:
        """The card's rule, or the defaults for a card without one."""
        return self.segmentation or SegmentationRule()

    @property
    def ood(self) -> OodSpec | None:
        return self.reliability.ood if self.reliability else None

    @property
    def calls(self) -> dict[str, CallRecord] | None:
        return self.reliability.calls if self.reliability else None

    @property
    def is_single_sequence(self) -> bool:
        """A segmenter trained on one grey sequence (``preprocessing.sequence``)."""
        p = self.preprocessing
        return self.is_segmenter and int(p.channels) == 1 and p.sequence is not None
