"""Model comparison: cards, evaluation on a folder or the bundled samples, curves, disagreements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from mri_core import compare, inference, models
from mri_core.access import folder_problem, server_folders
from mri_core.cards import Card
from mri_core.display import display_name, display_order
from mri_core.io import read_image
from mri_core.samples import sample_dir
from mri_core.tasks import TASKS
from views import store_session
from views.auth import settings as auth_settings
from views.model_choice import get_model, model_card, task_picker
from views.navigation import page_header
from views.session_case import current_identity
from views.tables import cross_source_rows, cross_source_table, side_by_side

page_header(__file__)

task = task_picker("cmp_task")
names = models.list_models(task)
cards = {n: model_card(n) for n in names}
is_seg = TASKS[task].kind == "segmenter"


@st.cache_resource(show_spinner="Timing models on this CPU…")
def latency(name: str) -> float:
    return compare.cpu_latency_ms(get_model(name))


def model_input(card: Card) -> str:
    """What the model is given: size, channels and, for a segmenter, which sequences, one slice at a time."""
    pre = card.preprocessing
    text = f"{pre.size[0]} px × {pre.channels} ch"
    if card.is_segmenter:
        text += f", {pre.sequence.upper()} only" if pre.sequence else ", pre-contrast + FLAIR + post-contrast"
        text += ", 2-D (one slice at a time)"
    return text


def training_text(card: Card) -> str:
    t, average = card.training, card.weight_average
    return (f"{t.epochs_run} epochs, {t.seconds / 60:.0f} min"
            + (f", mean of the last {average.epochs_averaged}" if average and average.kept else ""))


st.subheader("From the model cards (validation split)")
rows = []
for n, c in cards.items():
    v = c.validation
    row = {"model": n, "architecture": c.architecture, "params": c.params, "file MB": c.file_mb,
           "input": model_input(c), "training": training_text(c), "CPU latency ms": round(latency(n), 1)}
    if is_seg:
        row.update({k: getattr(v, k) for k in ("dice_patient_mean", "dice_tumor_slices", "iou", "detection_auc", "detection_accuracy")})
    else:
        row.update({k: getattr(v, k) for k in ("accuracy", "balanced_accuracy", "macro_f1", "auc_macro", "ece")})
        row["temperature"] = c.calibration.temperature if c.calibration else None
    row["abstained on validation"] = c.ood.validation_abstained if c.ood else None
    row["validation split"] = f"{c.split.kind}; n={c.split.n_val}"
    rows.append(row)
st.dataframe(side_by_side(rows), width="stretch", height="content")

if cross_source_rows(cards)[0]:
    st.subheader("On scans from other sources (held-out patients and subjects)")
    st.caption("Tumour or not, on sources other than the tumour set: LGG patients' FLAIR and T1 slices (TCGA), OASIS T1 "
               "slices. The T1 sequences were never trained on. Measured by `python -m mri_core.evaluate brain_tumor-shift`; "
               "each source's split is named under the table.")
    cross_source_table(cards)

st.subheader("Training curves")
curves = []
for n, c in cards.items():
    for metric, values in (c.history.curves if c.history else {}).items():
        curves += [{"model": n, "metric": metric, "epoch": i + 1, "value": v} for i, v in enumerate(values)]
if curves:
    df = pd.DataFrame(curves)
    fig = px.line(df, x="epoch", y="value", color="model", facet_col="metric", facet_col_wrap=3, markers=True, height=420)
    fig.update_yaxes(matches=None, showticklabels=True)  # each metric has its own scale: label every panel
    st.plotly_chart(fig, width="stretch", key="cmp_curves")

st.subheader("Evaluate side by side")
# Server folders: admins only, chosen among the roots configured in [access.folder_roots] and
# their sub-folders (mri_core.access.server_folders); never a typed path, never a path shown.
folders = server_folders(current_identity(), auth_settings())
sources = ["bundled samples"] + (["a folder on this server"] if folders else [])
if current_identity().is_admin and not folders:
    st.caption("No server folders are configured for evaluation: an administrator lists them under "
               "[access.folder_roots] in the server's secrets.toml (docs/deploy.md).")
if st.session_state.get("cmp_source") not in sources:  # a kept choice this user may no longer have
    st.session_state["cmp_source"] = sources[0]
source = st.radio("On", sources, horizontal=True, key="cmp_source")
folder = sample_dir(task)
if source != "bundled samples":
    layout = "the LGG layout (slices.csv)" if is_seg else "one sub-folder per class"
    labels = [f.label for f in folders]
    if st.session_state.get("cmp_folder") not in labels:
        st.session_state["cmp_folder"] = None
    picked = st.selectbox(f"Folder ({layout})", labels, index=None, placeholder="Choose a folder", key="cmp_folder")
    if picked is None:
        st.stop()
    folder = next(f.path for f in folders if f.label == picked)
# One models box per task: a box shared by the tasks would keep the old task's names, which the
# new task's options drop, and come back empty.
chosen = st.multiselect("Models", names, default=names, key=f"cmp_models_{task}")
if not chosen:
    st.info("Choose one model or more to evaluate.")
    st.stop()


@st.cache_data(show_spinner=False, max_entries=16)
def run_eval(name: str, folder: str, seg: bool):
    loaded = [get_model(name)]
    if seg:
        return compare.evaluate_segmenters(loaded, Path(folder))[name]
    return compare.evaluate_classifiers(loaded, Path(folder))[0]


progress = st.progress(0.0, text="Counting the images…")
try:
    n_images = compare.count_images(folder, None if is_seg else list(TASKS[task].class_names))
    evaluated = []
    for i, n in enumerate(chosen):
        ms = latency(n) * inference.views_per_image("segmenter" if is_seg else "classifier")
        progress.progress(i / len(chosen), text=f"Evaluating {n} ({i + 1} of {len(chosen)}) on {n_images:,} images, "
                                                f"about {max(1, round(n_images * ms / 1000))} s for this model…")
        evaluated.append(run_eval(n, str(folder), is_seg))
except (ValueError, OSError) as exc:  # the readers' messages quote paths: none is shown
    progress.empty()
    st.error(f"This folder cannot be evaluated. {folder_problem(exc, None if is_seg else TASKS[task].class_names)}")
    st.stop()
progress.empty()
store_session.folder_evaluated(task, chosen, n_images, str(folder), source == "bundled samples")  # issue 28: audit
results = dict(zip(chosen, evaluated)) if is_seg else evaluated
if source == "bundled samples":
    st.warning("These are the few bundled samples: they show that the page works and are **not a measure of the models** "
               "(a handful of images gives figures of 1.0 or 0.0 by chance). The models' measured figures are in the "
               "table above, from their validation splits.", icon="ℹ️")

if is_seg:
    table = pd.DataFrame([{"model": n, **{k: v for k, v in r.items() if k != "dice_per_patient"}} for n, r in results.items()])
    st.dataframe(side_by_side(table.to_dict("records")), width="stretch", height="content")
    long = table.melt(id_vars="model", value_vars=["dice_patient_mean", "dice_tumor_slices", "iou", "detection_auc", "detection_accuracy"])
    st.plotly_chart(px.bar(long, x="variable", y="value", color="model", barmode="group", range_y=[0, 1]),
                    width="stretch", key="cmp_seg_bars")
    st.stop()

class_names = TASKS[task].class_names
shown_names = [display_name(class_names[i]) for i in display_order(class_names)]
st.caption(f"{results[0].report['n']} images from " + ("the bundled samples" if source == "bundled samples" else "the chosen folder"))
summary = pd.DataFrame([{"model": r.name, **{k: r.report[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "auc_macro", "ece")}}
                        for r in results])
st.plotly_chart(px.bar(summary.melt(id_vars="model"), x="variable", y="value", color="model", barmode="group", range_y=[0, 1]),
                width="stretch", key="cmp_bars")

per_class = pd.DataFrame([{"model": r.name, "class": display_name(class_names[i]), "metric": k,
                           "value": r.report["per_class"][class_names[i]][k]}
                          for r in results for i in display_order(class_names) for k in ("precision", "recall", "f1")])
st.plotly_chart(px.bar(per_class, x="class", y="value", color="model", barmode="group", facet_col="metric", range_y=[0, 1],
                       category_orders={"class": shown_names}),
                width="stretch", key="cmp_per_class")

cols = st.columns(len(results))
for col, r in zip(cols, results):
    order = display_order(class_names)
    cm = np.asarray(r.report["confusion"])[np.ix_(order, order)]
    fig = px.imshow(cm, x=shown_names, y=shown_names, text_auto=True, color_continuous_scale="Blues",
                    labels=dict(x="predicted", y="true"), title=r.name)
    col.plotly_chart(fig, width="stretch", key=f"cmp_cm_{r.name}")

roc_fig, cal_fig = go.Figure(), go.Figure()
for r in results:
    for c, curve in compare.roc_per_class(r.labels, r.probs, list(class_names)).items():
        roc_fig.add_scatter(x=curve["fpr"], y=curve["tpr"], mode="lines",
                            name=f"{r.name}: {display_name(c)} (AUC {curve['auc']:.3f})")
    rel = compare.calibration_curve(r)
    cal_fig.add_scatter(x=rel["confidence"], y=rel["accuracy"], mode="lines+markers", name=f"{r.name} (ECE {r.report['ece']:.3f})")
# Legends below the plots, so many curves do not squash them.
below = dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0)
roc_fig.update_layout(title="ROC, one class against the rest", xaxis_title="false positive rate", yaxis_title="true positive rate",
                      legend=below, height=420 + 22 * len(results) * len(class_names) // 2, margin=dict(b=10))
cal_fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"), name="perfect calibration")
cal_fig.update_layout(title="Calibration", xaxis_title="confidence", yaxis_title="accuracy", legend=below,
                      height=420 + 22 * len(results) * len(class_names) // 2, margin=dict(b=10))
a, b = st.columns(2)
a.plotly_chart(roc_fig, width="stretch", key="cmp_roc")
b.plotly_chart(cal_fig, width="stretch", key="cmp_cal")

st.subheader("Where the models disagree")
diff = compare.disagreements(results, [display_name(c) for c in class_names])
number = {p: i + 1 for i, p in enumerate(results[0].paths)}  # images are shown by number, never by file name
if not diff:
    st.success("The chosen models give the same top class on every image." if len(results) > 1 else "Choose two models or more.")
for d in diff[:12]:
    c1, c2 = st.columns([1, 3])
    c1.image(np.clip(read_image(Path(d["path"]).read_bytes(), Path(d["path"]).name).slices[0], 0, 1), width=160)
    c2.markdown(f"**Image {number[d['path']]} of {len(number)}** — truth: **{display_name(d['truth'])}**  \n" +
                "  \n".join(f"{m}: {call}" for m, call in d["calls"].items()))
