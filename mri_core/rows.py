"""One row per scored slice: the columns of ``python -m mri_core.batch``'s output and of the predict page's CSV.

Every task writes the same columns (``columns``): the call and its doubts, one ``p_<class>``
column per class of the model, the segmenter's figures (empty for a classifier) and ``error``
(set only on a file that could not be read). Slices are numbered from 1, as the app numbers them.
The rows come from the app's own calls (``score_rows``), so a row equals what the page shows.
"""

from __future__ import annotations

import itertools
import re
from typing import NamedTuple

import numpy as np

BASE_COLUMNS = ["path", "slice", "n_slices", "task", "model", "prediction", "top_class", "confidence", "uncertainty",
                "reliable", "reason", "warnings"]
SEGMENTER_COLUMNS = ["tumor_probability", "area_px", "area_mm2"]
INT_COLUMNS = {"slice", "n_slices", "area_px"}
BOOL_COLUMNS = {"reliable"}  # False: the app abstains on this slice (``reason`` says why)
STR_COLUMNS = {"path", "task", "model", "prediction", "top_class", "reason", "warnings", "error"}
WARNING_SEPARATOR = " | "


class SliceItem(NamedTuple):
    """One slice to score: ``index`` is 0-based (its row says ``index + 1``)."""

    path: str  # relative path (batch) or the upload's label (page)
    index: int
    n_slices: int
    image: np.ndarray
    spacing_mm: tuple[float, float] | None
    modality: str


def prob_column(class_name: str) -> str:
    return "p_" + re.sub(r"\W+", "_", class_name).strip("_")  # "no tumor" -> p_no_tumor


def columns(class_names) -> list[str]:
    """The output's columns for a model with these classes, in order."""
    return BASE_COLUMNS + [prob_column(c) for c in class_names] + SEGMENTER_COLUMNS + ["error"]


def items_of(stack, path: str) -> list[SliceItem]:
    """Every slice of an ``io.ImageStack`` as items, under the name ``path``."""
    n = stack.n_slices
    return [SliceItem(path, k, n, stack.slices[k], stack.spacing_mm, stack.modality) for k in range(n)]


def error_row(path: str, task: str, model: str, reason: str) -> dict:
    return {"path": path, "task": task, "model": model, "error": reason}


def _base(item: SliceItem, loaded, top_class: str, reliable: bool, warnings: list[str]) -> dict:
    # ``prediction`` is empty where the app abstains, so a spreadsheet never shows an abstained call as
    # one; the model's top class is still in ``top_class``.
    return {"path": item.path, "slice": item.index + 1, "n_slices": item.n_slices, "task": loaded.task,
            "model": loaded.name, "prediction": top_class if reliable else None, "top_class": top_class,
            "reliable": bool(reliable), "warnings": WARNING_SEPARATOR.join(warnings)}


def classifier_row(item: SliceItem, loaded, pred, warnings: list[str]) -> dict:
    """The row of a classified slice: the call and its confidence, or neither where the app abstains
    (``reliable`` False: the probabilities stay, in the ``p_`` columns)."""
    row = _base(item, loaded, pred.label, pred.reliable, warnings)
    row.update({"confidence": pred.confidence if pred.reliable else np.nan, "uncertainty": pred.uncertainty,
                "reason": pred.reason})
    row.update({prob_column(c): float(v) for c, v in zip(pred.class_names, pred.probs)})
    return row


def segmenter_row(item: SliceItem, loaded, seg, warnings: list[str]) -> dict:
    """The row of a segmented slice: ``tumor`` when its tumour probability reaches the presence cut, no
    call where the slice is unlike the training slices; ``confidence`` is that probability or its
    complement; no TTA uncertainty."""
    from mri_core.measure import measure

    m = measure(seg.mask, item.spacing_mm)
    tp = float(seg.tumour_probability)
    row = _base(item, loaded, "tumor" if seg.present else "no tumor", seg.reliable, warnings)
    row.update({"confidence": (tp if seg.present else 1.0 - tp) if seg.reliable else np.nan, "uncertainty": np.nan,
                "reason": seg.reason,
                "tumor_probability": tp, "area_px": m.area_px, "area_mm2": np.nan if m.area_mm2 is None else m.area_mm2})
    probs = {"no tumor": 1.0 - tp, "tumor": tp}
    row.update({prob_column(c): probs.get(c, np.nan) for c in loaded.class_names})
    return row


def score_rows(loaded, items: list[SliceItem]) -> list[dict]:
    """Rows for ``items`` through the app's calls: each slice prepared once, classified and warned
    about; for a segmenter each file's consecutive items are one volume (``segment(volume=True)``)."""
    from mri_core import inference

    if not items:
        return []
    if loaded.kind == "classifier":
        x = inference.prepare_inputs(loaded, [it.image for it in items])
        preds = inference.classify_inputs(loaded, x, modality=[it.modality for it in items])
        return [classifier_row(it, loaded, p, inference.input_warnings(it.image, loaded, p, it.modality, model_input=xi))
                for it, p, xi in zip(items, preds, x)]
    rows = []
    for _, group in itertools.groupby(items, key=lambda it: it.path):
        group = list(group)
        segs = inference.segment(loaded, [it.image for it in group], volume=True, modality=[it.modality for it in group])
        for it, seg in zip(group, segs):
            rows.append(segmenter_row(it, loaded, seg, inference.input_warnings(it.image, loaded, None, it.modality)))
    return rows


def to_frame(rows: list[dict], cols: list[str]):
    """Rows in the output's column order and types (nullable ints and booleans, so error rows keep them)."""
    import pandas as pd

    df = pd.DataFrame(rows).reindex(columns=cols)
    for c in cols:
        if c in INT_COLUMNS:
            df[c] = df[c].astype("Int64")
        elif c in BOOL_COLUMNS:
            df[c] = df[c].astype("boolean")
        elif c in STR_COLUMNS:
            df[c] = df[c].astype(object).where(df[c].notna(), None)
        else:
            df[c] = df[c].astype("float64")
    return df
