"""A case report to keep: a two-page PDF made with fpdf2 (a maintained PDF library).

Page 1, the result: file name, date, the slice with its overlay, the call with its confidence or
the model's abstention, the mask's measurements, Dice against a ground truth when one was
given, and whether the mask was edited by hand. Page 2, the model: its name, the data it was
trained on and its measured validation figures (from its card), and what the report is for.

No patient identifier is written unless the caller passes ``patient`` (the user switched it on).
The PDF's own metadata names the app only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mri_core.cards import Card, SegmenterReport
from mri_core.display import DISCLAIMER, measurement_rows, percent

# Helvetica (a PDF core font) covers Latin-1 only: the few other characters used are replaced.
_LATIN1 = {"—": "-", "–": "-", "“": '"', "”": '"', "’": "'", "…": "...", "×": "x", "≤": "<=", "≥": ">="}


def _text(value) -> str:
    s = str(value)
    for a, b in _LATIN1.items():
        s = s.replace(a, b)
    return s.encode("latin-1", "replace").decode("latin-1")


_SEGMENTER_FIGURES = (("dice_patient_mean", "Dice per patient", "{:.3f}"), ("dice_tumor_slices", "Dice on tumour slices", "{:.3f}"),
                      ("detection_auc", "Detection AUC", "{:.3f}"), ("detection_accuracy", "Detection accuracy", "{:.3f}"))
_CLASSIFIER_FIGURES = (("accuracy", "Accuracy", "{:.1%}"), ("balanced_accuracy", "Balanced accuracy", "{:.1%}"),
                       ("macro_f1", "Macro-F1", "{:.3f}"), ("auc_macro", "AUC", "{:.3f}"), ("ece", "ECE", "{:.3f}"))


def validation_figures(card: Card) -> list[tuple[str, str]]:
    """(label, value) of a model's measured validation figures, from its card."""
    v, split = card.validation, card.split
    figures = _SEGMENTER_FIGURES if card.is_segmenter or isinstance(v, SegmenterReport) else _CLASSIFIER_FIGURES
    rows = [(label, fmt.format(getattr(v, key))) for key, label, fmt in figures if getattr(v, key, None) is not None]
    if split:
        rows.append(("Validation split", f"{'?' if split.n_val is None else split.n_val} slices, {split.kind}; "
                                         f"{'?' if split.n_train is None else split.n_train} training slices"))
    return rows


@dataclass
class CaseReport:
    file_name: str
    date: str
    model_name: str
    model_card: Card
    image: np.ndarray  # RGB uint8: the slice with its overlay (or Grad-CAM)
    image_caption: str
    slice_index: int = 0  # 0-based, written from 1
    n_slices: int = 1
    call: str | None = None  # the class called; None for a segmentation
    confidence: float | None = None
    uncertainty: float | None = None
    abstained: bool = False
    abstention_reason: str = ""
    measurements: dict | None = None  # Measurements.as_dict()
    spacing_known: bool = False
    volume_ml: float | None = None
    dice: float | None = None
    edited: bool = False
    warnings: list[str] = field(default_factory=list)
    patient: dict[str, str] | None = None  # written only when the user switched it on
    slice_image: np.ndarray | None = None  # RGB or grey uint8: the slice as read, beside ``image`` (a classifier's report)
    probabilities: list[tuple[str, float]] = field(default_factory=list)  # (readable class, calibrated probability)


def _rows(pdf, rows: list[tuple[str, str]], label_w: float = 60) -> None:
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(label_w, 6, _text(label))
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(0, 6, _text(value), new_x="LMARGIN", new_y="NEXT")


def _heading(pdf, text: str) -> None:
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 8, _text(text), new_x="LMARGIN", new_y="NEXT")


def _result_page(pdf, r: CaseReport) -> None:
    """Page 1: the case, the call (or the abstention), measurements, warnings and the picture."""
    from PIL import Image

    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, "MRI Insight report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "I", 9)
    pdf.multi_cell(0, 5, _text(DISCLAIMER), new_x="LMARGIN", new_y="NEXT")
    _heading(pdf, "Case")
    rows = [("File", r.file_name), ("Date", r.date), ("Slice", f"{r.slice_index + 1} of {r.n_slices}"),
            ("Model", r.model_name)]
    if r.patient:
        rows += [(k, v) for k, v in r.patient.items()]
    _rows(pdf, rows)

    _heading(pdf, "Result")
    if r.call is not None or r.abstained:
        if r.abstained:
            _rows(pdf, [("Call", "none: the model cannot judge this image"),
                        ("Why", r.abstention_reason or "the image is unlike the model's training images")])
        else:
            rows = [("Call", r.call), ("Calibrated confidence", percent(r.confidence))]
            if r.uncertainty is not None:
                rows.append(("Uncertainty (TTA std)", f"{r.uncertainty:.2f}"))
            _rows(pdf, rows)
    if r.probabilities:
        label = "Probabilities" if r.call is not None else "Probabilities (no call)"
        _rows(pdf, [(label if i == 0 else "", f"{name}: {percent(p)}") for i, (name, p) in enumerate(r.probabilities)])
    if r.measurements is not None:
        _rows(pdf, measurement_rows(r.measurements, r.spacing_known, edited=r.edited, volume_ml=r.volume_ml, dice=r.dice))
    if r.warnings:
        _rows(pdf, [("Warning", w) for w in r.warnings])

    pictures = [np.asarray(r.image, np.uint8)] if r.slice_image is None else [np.asarray(r.slice_image, np.uint8),
                                                                             np.asarray(r.image, np.uint8)]
    side = 110.0 if len(pictures) == 1 else 85.0  # mm on the page
    pdf.ln(3)
    top, x, tallest = pdf.get_y(), pdf.l_margin, 0.0
    for picture in pictures:  # side by side, each fitted in a square of ``side`` mm
        img = Image.fromarray(picture)
        w, h = img.size
        width, height = (side, side * h / w) if w >= h else (side * w / h, side)
        pdf.image(img, x=x, y=top, w=width, h=height)
        x, tallest = x + width + 5, max(tallest, height)
    pdf.set_y(top + tallest + 1)
    pdf.set_font("Helvetica", "I", 9)
    pdf.multi_cell(0, 5, _text(r.image_caption), new_x="LMARGIN", new_y="NEXT")


def _model_page(pdf, r: CaseReport) -> None:
    """Page 2: the model, what it was trained on, and its validation figures with what they are not."""
    pdf.add_page()
    _heading(pdf, f"The model: {r.model_name}")
    card = r.model_card
    about = [("Task", card.task), ("Architecture", card.architecture or "")]
    if card.data:
        about.append(("Trained on", card.data))
    _rows(pdf, about)
    _heading(pdf, "Measured on its validation split")
    _rows(pdf, validation_figures(card))
    pdf.ln(2)
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 5, _text(
        "These figures come from a validation split held out from the model's training data (public research "
        "collections), not from this hospital's scans; expect lower figures on other scanners and populations. "
        + DISCLAIMER), new_x="LMARGIN", new_y="NEXT")


def pdf_report(r: CaseReport) -> bytes:
    """The report as PDF bytes (2 pages: the result, the model)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title("MRI Insight report")
    pdf.set_author("MRI Insight")
    pdf.set_creator("MRI Insight")
    pdf.set_auto_page_break(auto=True, margin=15)
    _result_page(pdf, r)
    _model_page(pdf, r)
    return bytes(pdf.output())
