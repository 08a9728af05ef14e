"""Upload & predict: a call, calibrated confidence, uncertainty, warnings and Grad-CAM per slice.

When the model cannot judge an image (``pred.reliable`` is False) the page says so first, in a
box above everything else, and shows the probabilities only on request. Warnings come above the
call too. Results are cached per (content hash, model, slice): a rerun, a widget change or a
download recomputes nothing.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from mri_core import inference, rows
from mri_core.annotate import mask_overlay, orientation_marks, reading_view, window_level
from mri_core.cards import Card
from mri_core.display import display_name, display_order, percent
from mri_core.preprocess import to_uint8
from mri_core.report import CaseReport
from mri_core.tasks import TASKS
from views import pacs_source  # PACS (issue 29)
from views import store_session
from views.model_choice import model_picker, segmenter_picker, task_picker
from views.navigation import page_header
from views.reading import patient_details, pdf_download, reading_controls, show_notes, slice_picker
from views.scan_input import choose_inputs, file_picker, show_errors
from views.segmenting import PROBABILITY_HELP, case_segmentation, mask_abstention, mask_caption, presence_text, probability_text
from views.session_case import open_case

page_header(__file__)

task = task_picker("predict_task")
segmenter = TASKS[task].kind == "segmenter"
loaded = None if segmenter else model_picker(task, key=f"predict_model_{task}")
# One uploader for every task: switching the task keeps the upload.
inputs = pacs_source.choose(key="predict")  # PACS (issue 29): None unless "From PACS" is chosen
inputs = show_errors(choose_inputs(task, key=f"predict_{task}", upload_key="predict") if inputs is None else inputs)
if not inputs:
    st.stop()
if segmenter:  # the mask model depends on the upload: a grey one gets a one-sequence (FLAIR) model
    loaded = segmenter_picker([i.stack for i in inputs], key=f"predict_model_{task}")


@st.cache_data(show_spinner="Predicting…", max_entries=64)
def _analysis(_loaded, _image, content: str, model_path: str, index: int, modality: str) -> inference.SliceAnalysis:
    """The call, Grad-CAM and warnings of one slice (a segmenter's warnings only: its masks come from
    the whole volume), per (content hash, model, slice)."""
    return inference.analyse_slice(_loaded, _image, modality, gradcam=_loaded.kind == "classifier")


def analysis(case, index: int) -> inference.SliceAnalysis:
    return _analysis(loaded, case.stack.slice(index), case.key, str(loaded.path), index, case.stack.modality)


def probability_chart(pred: inference.ClassPrediction) -> go.Figure:
    order = display_order(pred.class_names)[::-1]  # plotly draws the first bar at the bottom
    colours = ["#4FC3F7" if i == pred.index else "#546E7A" for i in order]
    fig = go.Figure(go.Bar(x=[pred.probs[i] for i in order], y=[display_name(pred.class_names[i]) for i in order],
                           orientation="h", marker_color=colours, text=[f"{pred.probs[i]:.1%}" for i in order],
                           textposition="auto"))
    fig.update_layout(xaxis=dict(range=[0, 1], tickformat=".0%", title="calibrated probability"),
                      height=220, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def slice_view(case, image, reading):
    return reading_view(image, reading.level, reading.width, reading.zoom, reading.centre, case.stack.spacing_mm,
                        orientation_marks(case.stack))


def measured_accuracy(card: Card) -> str:
    """How often the model is right on images it never saw, beside every call: the dementia model's
    stage calls are barely better than chance on new subjects, and a bare percentage would hide it."""
    v = card.validation
    chance = 1 / len(card.class_names)
    return (f"Measured on {v.n} validation images ({card.split.kind.split(' (')[0]}): balanced accuracy "
            f"{v.balanced_accuracy:.0%}, against {chance:.0%} by chance. A call's confidence is calibrated on the same images.")


def show_classification(case, index: int, reading) -> None:
    image = case.stack.slice(index)
    result = analysis(case, index)
    pred, cam, warnings = result.prediction, result.gradcam, result.warnings
    store_session.model_run(case, loaded, index, pred)  # issue 28: audited once; the call kept with the case
    store_session.save(case)  # issue 28
    if not pred.reliable:  # the abstention first, above anything that looks like a call
        st.error("### The model cannot judge this image\n"
                 f"{pred.reason or 'It is unlike the brain MRI slices the model was trained on.'}\n\n"
                 "No call is made. The model's probabilities are below, on request; they are not a diagnosis.",
                 icon="🚫")
    for w in warnings:
        st.warning(w)
    left, mid, right = st.columns([1, 1, 1.2])
    left.image(slice_view(case, image, reading), caption=f"Uploaded slice {index + 1} of {case.stack.n_slices}", width="stretch")
    name = display_name(pred.label)
    if pred.reliable:
        mid.image(cam, caption=f"Grad-CAM for “{name}” on the model's cropped input", width="stretch")
        with right:
            st.metric("Prediction", name, help=f"Top class after temperature scaling, averaged over {inference.CLASSIFIER_VIEWS} test-time views.")
            c1, c2 = st.columns(2)
            c1.metric("Calibrated confidence", percent(pred.confidence))
            c2.metric("Uncertainty (TTA std)", f"{pred.uncertainty:.2f}",
                      help=f"Standard deviation of the top-class probability over {inference.CLASSIFIER_VIEWS} views (as is, mirrored, zoomed, both). "
                           "0 = the views agree.")
            st.plotly_chart(probability_chart(pred), width="stretch", key=f"bar_{case.key[:12]}_{index}")
            weak = loaded.card.validation.balanced_accuracy < 0.7  # say it loudly where it is weak
            (st.info if weak else st.caption)(measured_accuracy(loaded.card))
    else:
        with right:
            st.metric("Result", "No call", help="The model abstains: see the box above.")
            st.caption(measured_accuracy(loaded.card))
            if st.toggle("Show the model's probabilities anyway", key=f"predict_show_probs_{case.key[:12]}_{index}"):
                st.caption(f"Top class, not a call: {name} ({percent(pred.confidence)}).")
                st.plotly_chart(probability_chart(pred), width="stretch", key=f"bar_{case.key[:12]}_{index}")
                mid.image(cam, caption=f"Grad-CAM for the top class “{name}” (no call)", width="stretch")
    if case.truth:
        st.caption(f"Known answer for this sample: **{display_name(case.truth)}**")
    pdf_download(st, CaseReport(
        file_name=case.name, date=case.opened, model_name=loaded.name, model_card=loaded.card, image=cam,
        slice_image=to_uint8(image),
        probabilities=[(display_name(pred.class_names[i]), float(pred.probs[i])) for i in display_order(pred.class_names)],
        image_caption=f"Slice {index + 1} of {case.stack.n_slices} as read (left); Grad-CAM for the top class on the "
                      "model's input (right)",
        slice_index=index, n_slices=case.stack.n_slices, call=name if pred.reliable else None,
        confidence=pred.confidence, uncertainty=pred.uncertainty, abstained=not pred.reliable,
        abstention_reason=pred.reason, warnings=list(warnings)), case.stack, key="predict_pdf")


def show_segmentation(case, index: int, reading) -> None:
    image = case.stack.slice(index)
    # The whole file as one volume, as on the mask page and in the table, so all three agree.
    case_segmentation(case, loaded)
    store_session.save(case)  # issue 28: the case and its masks in the database
    seg = case.slice_mask(loaded.name, index)
    mask_abstention(seg.reason)  # first, as a classifier's abstention
    for w in analysis(case, index).warnings:
        st.warning(w)
    left, right = st.columns(2)
    left.image(slice_view(case, image, reading), caption=f"Uploaded slice {index + 1} of {case.stack.n_slices}", width="stretch")
    overlay = mask_overlay(window_level(image, reading.level, reading.width), seg.mask)
    right.image(slice_view(case, overlay, reading), caption=mask_caption(seg), width="stretch")
    m = seg.measurements
    c = st.columns(4)
    c[0].metric("Tumour present", presence_text(seg))
    c[1].metric("Tumour probability", probability_text(seg), help=PROBABILITY_HELP)
    c[2].metric("Area", f"{m.area_mm2:.0f} mm²" if m.area_mm2 is not None else f"{m.area_px} px")
    c[3].metric("Lesions", m.n_lesions)
    st.page_link("views/mask.py", label=f"Open the mask editor on {case.name}, slice {index + 1}: measurements, correction "
                 "and export", icon=":material/edit:")


if len(inputs) == 1:
    case = open_case(inputs[0])
    st.subheader(case.name)
    show_notes(case.stack)
    patient_details(case.stack, key="predict_patient")
    index = slice_picker(case, key="predict_slice")
    reading = reading_controls(case.stack, key="predict_read")
    (show_classification if loaded.kind == "classifier" else show_segmentation)(case, index, reading)
    st.stop()


@st.cache_data(show_spinner=False, max_entries=256)
def _file_rows(_loaded, _stack, content: str, model_path: str, label: str) -> list[dict]:
    """The rows (``mri_core.rows``) of one file, per (content hash, model): a rerun (the CSV
    download's included) scores nothing again."""
    return rows.score_rows(_loaded, rows.items_of(_stack, label))


def readable_calls(table: pd.DataFrame) -> list[str]:
    """The prediction column as the page shows it: readable class names, and no call where the model abstains."""
    return [display_name(p) if ok else "no call (abstained)" for p, ok in zip(table["prediction"], table["reliable"])]


# Several files: one row per slice, a progress bar, a table and a CSV (the batch scorer's columns).
scored = []
total = sum(i.stack.n_slices for i in inputs)
bar = st.progress(0.0, text=f"Scoring {total} slices…")
done = 0
for item in inputs:
    scored += _file_rows(loaded, item.stack, item.key, str(loaded.path), item.label)
    done += item.stack.n_slices
    bar.progress(done / total, text=f"Scored {done} of {total} slices")
bar.empty()
table = rows.to_frame(scored, rows.columns(loaded.class_names))
if not table["reliable"].all():
    st.error(f"The model cannot judge {int((~table['reliable']).sum())} of {len(table)} slices: their rows say "
             "“no call (abstained)” and why.", icon="🚫")
# On screen the figures that matter, the long texts last (the CSV has every class's probability too).
shown = [c for c in ("path", "slice", "prediction", "reliable", "confidence", "uncertainty", "tumor_probability", "area_px",
                     "area_mm2", "reason", "warnings") if table[c].notna().any()]
st.dataframe(table[shown].assign(prediction=readable_calls(table)).round(4), width="stretch", hide_index=True,
             column_config={"path": st.column_config.TextColumn("file", width="medium"),
                            "warnings": st.column_config.TextColumn(width="large")})
st.download_button("Download results (CSV)", table.to_csv(index=False).encode(), "mri_insight_results.csv", "text/csv",
                   key="predict_csv", on_click="ignore")
case = open_case(file_picker(inputs, "Look at one file in detail", key="predict_detail"))
index = slice_picker(case, key="predict_detail_slice")
reading = reading_controls(case.stack, key="predict_read")
(show_classification if loaded.kind == "classifier" else show_segmentation)(case, index, reading)
