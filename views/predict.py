"""Upload & predict: a call, calibrated confidence, uncertainty, warnings and Grad-CAM per slice."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from mri_core import explain, inference
from mri_core.annotate import mask_overlay
from mri_core.measure import measure
from mri_core.preprocess import prepare
from views.common import (
    DISCLAIMER, as_display, choose_inputs, model_picker, patient_details, segment_volume, show_errors, show_notes, slice_picker,
    stack_key, task_picker,
)

st.title("Upload & predict")
st.caption(DISCLAIMER)

task = task_picker("predict_task")
loaded = model_picker(task, key=f"predict_model_{task}")
inputs = show_errors(choose_inputs(task, key=f"predict_{task}"))
if not inputs:
    st.stop()


def probability_chart(pred: inference.ClassPrediction) -> go.Figure:
    colours = ["#4FC3F7" if i == pred.index else "#546E7A" for i in range(len(pred.class_names))]
    fig = go.Figure(go.Bar(x=pred.probs, y=pred.class_names, orientation="h", marker_color=colours,
                           text=[f"{p:.1%}" for p in pred.probs], textposition="auto"))
    fig.update_layout(xaxis=dict(range=[0, 1], tickformat=".0%", title="calibrated probability"),
                      height=220, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def show_classification(item, index: int) -> None:
    image = item.stack.slice(index)
    model_input = prepare(image, loaded.preprocessing)
    pred = inference.classify_inputs(loaded, model_input[None])[0]
    left, mid, right = st.columns([1, 1, 1.2])
    left.image(as_display(image), caption="Uploaded slice", width="stretch")
    heat = explain.gradcam(loaded, model_input, pred.index)
    mid.image(explain.overlay(model_input[..., 0] if model_input.shape[-1] == 1 else model_input, heat),
              caption=f"Grad-CAM for “{pred.label}” on the model's cropped input", width="stretch")
    with right:
        st.metric("Prediction", pred.label, help="Top class after temperature scaling, averaged over 4 test-time views.")
        c1, c2 = st.columns(2)
        c1.metric("Calibrated confidence", f"{pred.confidence:.0%}")
        c2.metric("Uncertainty (TTA std)", f"{pred.uncertainty:.2f}",
                  help="Standard deviation of the top-class probability over 4 views (as is, mirrored, zoomed, both). "
                       "0 = the views agree.")
        st.plotly_chart(probability_chart(pred), width="stretch", key=f"bar_{item.label}_{index}")
        if item.truth:
            st.caption(f"Known answer for this sample: **{item.truth}**")
    for w in inference.input_warnings(image, loaded, pred, item.stack.modality, model_input=model_input):
        st.warning(w)


def show_segmentation(item, index: int) -> None:
    image = item.stack.slice(index)
    # The whole file as one volume, as on the mask page and in the table, so all three agree.
    masks, probs = segment_volume(loaded, item.stack, stack_key(item.label, item.stack))
    mask, probability = masks[index], float(probs[index])
    left, right = st.columns(2)
    left.image(as_display(image), caption="Uploaded slice", width="stretch")
    right.image(mask_overlay(image, mask), caption="Predicted tumour mask", width="stretch")
    m = measure(mask, item.stack.spacing_mm)
    c = st.columns(4)
    c[0].metric("Tumour present", "yes" if probability >= inference.PRESENCE_CUT else "no")
    c[1].metric("Tumour probability", f"{probability:.0%}")
    c[2].metric("Area", f"{m.area_mm2:.0f} mm²" if m.area_mm2 is not None else f"{m.area_px} px")
    c[3].metric("Lesions", m.n_lesions)
    for w in inference.input_warnings(image, loaded, None, item.stack.modality):
        st.warning(w)
    st.page_link("views/mask.py", label="Open the mask editor for measurements, correction and export", icon=":material/edit:")


if len(inputs) == 1:
    item = inputs[0]
    st.subheader(item.label)
    show_notes(item.stack)
    patient_details(item.stack, key="predict_patient")
    index = slice_picker(item.stack, key=f"predict_slice_{item.label}")
    if loaded.kind == "classifier":
        show_classification(item, index)
    else:
        show_segmentation(item, index)
    st.stop()

# Several files: one row per slice, a progress bar, a table and a CSV.
rows = []
total = sum(i.stack.n_slices for i in inputs)
bar = st.progress(0.0, text=f"Scoring {total} slices…")
done = 0
for item in inputs:
    slices = [item.stack.slice(k) for k in range(item.stack.n_slices)]
    if loaded.kind == "classifier":
        for k, p in enumerate(inference.classify(loaded, slices)):
            rows.append({"file": item.label, "slice": k, "prediction": p.label, "confidence": round(p.confidence, 4),
                         "uncertainty": round(p.uncertainty, 4),
                         **{f"p_{c}": round(float(v), 4) for c, v in zip(p.class_names, p.probs)}})
    else:
        for k, s in enumerate(inference.segment(loaded, slices, volume=True)):
            m = measure(s.mask, item.stack.spacing_mm)
            rows.append({"file": item.label, "slice": k, "prediction": "tumor" if s.present else "no tumor",
                         "tumor_probability": round(s.tumor_probability, 4), "area_px": m.area_px, "area_mm2": m.area_mm2})
    done += item.stack.n_slices
    bar.progress(done / total, text=f"Scored {done} of {total} slices")
bar.empty()
table = pd.DataFrame(rows)
st.dataframe(table, width="stretch", hide_index=True)
st.download_button("Download results (CSV)", table.to_csv(index=False).encode(), "mri_insight_results.csv", "text/csv",
                   key="predict_csv")
pick = st.selectbox("Look at one file in detail", range(len(inputs)), format_func=lambda i: inputs[i].label, key="predict_detail")
item = inputs[pick]
index = slice_picker(item.stack, key=f"predict_detail_slice_{pick}")
(show_classification if loaded.kind == "classifier" else show_segmentation)(item, index)
