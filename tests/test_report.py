"""mri_core.report: the PDF case report opens, has its two pages and no identifiers by default."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from factories import phantom
from mri_core.measure import measure
from mri_core.models import Registry
from mri_core.report import CaseReport, pdf_report, validation_figures

pypdf = pytest.importorskip("pypdf")
BUNDLED = Registry(Path(__file__).resolve().parent.parent / "models")
CARD = BUNDLED.read("lgg_unet_lite")
PATIENT = {"PatientName": "Doe^Jane", "PatientID": "ID-778899", "PatientBirthDate": "19700101"}


def _report(**kw) -> CaseReport:
    mask = np.zeros((96, 96), bool)
    mask[30:50, 20:45] = True
    rgb = (np.dstack([phantom()] * 3) * 255).astype(np.uint8)
    base = dict(file_name="scan_0042.dcm", date="2026-12-02 14:00 UTC", model_name="lgg_unet_lite", model_card=CARD,
                image=rgb, image_caption="Slice 3 with its mask", slice_index=2, n_slices=5,
                measurements=measure(mask, (0.5, 0.5)).as_dict(), spacing_known=True, volume_ml=1.25, dice=0.912,
                edited=True)
    base.update(kw)
    return CaseReport(**base)


def _pages(data: bytes) -> list[str]:
    assert data.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(data))
    return [p.extract_text() for p in reader.pages]


def test_segmentation_report_has_the_result_then_the_model():
    data = pdf_report(_report())
    pages = _pages(data)
    assert len(pages) == 2
    first, second = pages
    for text in ("scan_0042.dcm", "2026-12-02 14:00 UTC", "Slice", "3 of 5", "edited by hand", "Dice with the ground truth",
                 "0.912", "Longest diameter", "1.25 mL", "lgg_unet_lite"):
        assert text in first, text
    assert f"{CARD.validation.dice_patient_mean:.3f}" in second and "Dice per patient" in second
    assert "does not replace a radiologist" in first + second
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages[0].images) == 1  # the slice with its overlay


def test_no_patient_identifiers_unless_turned_on():
    plain = pdf_report(_report())
    text = "".join(_pages(plain))
    meta = str(pypdf.PdfReader(io.BytesIO(plain)).metadata)
    for value in PATIENT.values():
        assert value not in text and value not in meta and value.encode() not in plain
    shown = "".join(_pages(pdf_report(_report(patient=PATIENT))))
    assert "Doe^Jane" in shown and "ID-778899" in shown


def test_classification_report_with_a_call_and_with_an_abstention():
    card = BUNDLED.read("brain_tumor_mobilenetv3_small")
    call = "".join(_pages(pdf_report(_report(model_card=card, measurements=None, dice=None, volume_ml=None, edited=False,
                                             call="meningioma", confidence=0.93, uncertainty=0.02))))
    assert "meningioma" in call and "93%" in call and "Balanced accuracy" in call
    abstained = "".join(_pages(pdf_report(_report(model_card=card, measurements=None, dice=None, volume_ml=None,
                                                  abstained=True, abstention_reason="Far from the training images — no call.",
                                                  warnings=["This is a colour image; MRI slices are grey."]))))
    assert "cannot judge this image" in abstained and "Far from the training images - no call." in abstained
    assert "colour image" in abstained and "Calibrated confidence" not in abstained


def test_a_tumour_type_report_carries_the_slice_and_every_class_probability():
    """issue 27: the tumour-type PDF had Grad-CAM only."""
    card = BUNDLED.read("brain_tumor_mobilenetv3_small")
    grey = (phantom() * 255).astype(np.uint8)
    probs = [("glioma", 0.021), ("meningioma", 0.962), ("no tumour", 0.0004), ("pituitary", 0.0166)]
    data = pdf_report(_report(model_card=card, measurements=None, dice=None, volume_ml=None, edited=False,
                              call="meningioma", confidence=0.962, uncertainty=0.02, slice_image=grey, probabilities=probs))
    text = _pages(data)[0]
    for name, shown in (("glioma", "2%"), ("meningioma", "96%"), ("no tumour", "< 0.1%"), ("pituitary", "2%")):
        assert f"{name}: {shown}" in text, name
    assert len(pypdf.PdfReader(io.BytesIO(data)).pages[0].images) == 2  # the slice as read, and Grad-CAM


def test_validation_figures_from_the_card():
    rows = dict(validation_figures(CARD))
    assert rows["Dice per patient"] == f"{CARD.validation.dice_patient_mean:.3f}"
    assert "500 slices" in rows["Validation split"]
