"""mri_core.rows: one row schema for every task, filled by the app's own calls."""

from __future__ import annotations

import numpy as np
import pandas as pd

from factories import phantom
from mri_core import inference, rows
from mri_core.io import ImageStack
from mri_core.measure import measure


def test_every_task_has_the_same_columns_but_its_class_probabilities():
    tumour = rows.columns(["glioma", "meningioma", "notumor", "pituitary"])
    lgg = rows.columns(["no tumor", "tumor"])
    assert [c for c in tumour if not c.startswith("p_")] == [c for c in lgg if not c.startswith("p_")]
    assert tumour[: len(rows.BASE_COLUMNS)] == rows.BASE_COLUMNS and tumour[-1] == "error"
    assert {"reliable", "reason", "warnings", "tumor_probability", "area_px", "area_mm2"} <= set(tumour)
    assert [rows.prob_column(c) for c in ("no tumor", "VeryMildDemented", "a-b ")] == ["p_no_tumor", "p_VeryMildDemented", "p_a_b"]


def test_classifier_rows_are_the_classify_call_numbered_from_one(classifier):
    stack = ImageStack(slices=np.stack([phantom(70, 70, seed=s) for s in range(3)]), format="nifti", modality="CT")
    got = rows.score_rows(classifier, rows.items_of(stack, "scan.nii"))
    preds = inference.classify(classifier, list(stack.slices), modality="CT")
    assert [r["slice"] for r in got] == [1, 2, 3] and {r["n_slices"] for r in got} == {3}
    for r, p, image in zip(got, preds, stack.slices):
        assert (r["path"], r["task"], r["model"]) == ("scan.nii", "brain_tumor", classifier.name)
        assert r["top_class"] == p.label and r["uncertainty"] == p.uncertainty
        assert np.isnan(r["confidence"])  # an abstained row shows no confidence as if it were a call
        assert r["reliable"] is False and r["reason"] == p.reason  # a CT file: the app abstains
        assert r["prediction"] is None  # so no spreadsheet shows the abstained top class as a call
        assert r["warnings"] == " | ".join(inference.input_warnings(image, classifier, p, "CT"))
        assert [r[rows.prob_column(c)] for c in p.class_names] == [float(v) for v in p.probs]
        assert "tumor_probability" not in r


def test_segmenter_rows_score_each_file_as_one_volume(segmenter):
    a = ImageStack(slices=np.stack([np.dstack([phantom(48, 48, seed=s)] * 3) for s in range(3)]), format="nifti",
                   spacing_mm=(0.5, 0.5))
    b = ImageStack(slices=np.dstack([phantom(40, 40, seed=9)] * 3)[None], format="png")
    got = rows.score_rows(segmenter, rows.items_of(a, "a.nii") + rows.items_of(b, "b.png"))
    expected = [(s, "a.nii", (0.5, 0.5)) for s in inference.segment(segmenter, list(a.slices), volume=True)]
    expected += [(s, "b.png", None) for s in inference.segment(segmenter, list(b.slices), volume=True)]
    assert len(got) == 4
    for r, (s, path, spacing) in zip(got, expected):
        m = measure(s.mask, spacing)
        assert r["path"] == path and r["tumor_probability"] == s.tumour_probability and r["p_tumor"] == s.tumour_probability
        assert r["prediction"] == r["top_class"] == ("tumor" if s.present else "no tumor") and r["reliable"] is True
        assert r["area_px"] == m.area_px and (np.isnan(r["area_mm2"]) if m.area_mm2 is None else r["area_mm2"] == m.area_mm2)
        assert np.isnan(r["uncertainty"])


def test_frame_keeps_the_columns_order_and_types_with_error_rows():
    cols = rows.columns(["no tumor", "tumor"])
    ok = {"path": "a.png", "slice": 1, "n_slices": 1, "task": "lgg", "model": "m", "prediction": "tumor", "confidence": 0.9,
          "reliable": True, "reason": "", "warnings": "", "area_px": 12}
    df = rows.to_frame([ok, rows.error_row("b.png", "lgg", "m", "The file is empty (0 bytes).")], cols)
    assert list(df.columns) == cols
    assert str(df["slice"].dtype) == "Int64" and str(df["area_px"].dtype) == "Int64"
    assert str(df["reliable"].dtype) == "boolean" and df["confidence"].dtype == np.float64
    assert df.loc[1, "error"] == "The file is empty (0 bytes)." and df.loc[0, "error"] is None
    assert pd.isna(df.loc[1, "slice"]) and pd.isna(df.loc[1, "reliable"])


def test_no_items_no_rows(classifier):
    assert rows.score_rows(classifier, []) == []


def test_a_segmented_slice_the_model_cannot_judge_has_no_call(segmenter):
    import dataclasses

    strict = dataclasses.replace(segmenter, ood=dataclasses.replace(segmenter.ood, threshold=-1.0))
    b = ImageStack(slices=np.dstack([phantom(40, 40, seed=9)] * 3)[None], format="png")
    (r,) = rows.score_rows(strict, rows.items_of(b, "b.png"))
    assert r["prediction"] is None and r["top_class"] in ("tumor", "no tumor") and r["reliable"] is False
    assert "unlike the images the model was trained on" in r["reason"]
