"""Home: what each model was trained on, how well it did on data it never saw, and what the tool is for."""

import streamlit as st

from mri_core import models
from mri_core.display import DISCLAIMER
from mri_core.tasks import TASKS
from views.auth import session_note
from views.model_choice import model_card
from views.navigation import visible_pages
from views.session_case import current_identity
from views.tables import cross_source_table, side_by_side

st.title("MRI Insight")
session_note()
st.markdown(
    "Drop brain MRI slices (PNG, JPEG, TIFF, DICOM or NIfTI) and get a **tumour-type** call, a "
    "**dementia-stage** call or a **lower-grade-glioma mask** with measurements, each with a calibrated "
    "confidence, an uncertainty and a picture of what the network looked at."
)
st.caption("Where the app is given a PACS (DICOMweb), Upload & predict and Tumour mask open a series straight from it "
           "(**From PACS**), and the mask page sends the mask, measurements and PDF report back to the scan's study.")  # issue 29
st.warning(
    f"**{DISCLAIMER}** The models were trained on public research collections; their figures below "
    "come from a validation split held out from the training data, not from your hospital's scans."
)

others = [p for p in visible_pages(current_identity()) if not p.default]  # issue 28: admin pages for admins only
for column, page in zip(st.columns(len(others)), others):
    column.page_link(page.path, label=page.title, icon=page.icon)

st.subheader("The models")
for task_name, task in TASKS.items():
    names = models.list_models(task_name)
    st.markdown(f"**{task.title}** — {task.description}")
    if not names:
        st.caption("No trained model installed for this task.")
        continue
    rows = []
    for n in names:
        c = model_card(n)
        v, split = c.validation, c.split
        row = {"model": n + (" (default)" if c.default else "")}
        if task.kind == "segmenter":
            row.update({"Dice per patient": round(v.dice_patient_mean, 3), "detection AUC": round(v.detection_auc, 3)})
        else:
            row.update({"accuracy": f"{v.accuracy:.1%}", "balanced accuracy": f"{v.balanced_accuracy:.1%}",
                        "macro-F1": round(v.macro_f1, 3)})
        row.update({"architecture": c.architecture, "trained on": f"{split.n_train} slices of {c.data}",
                    "validated on": f"{split.n_val} unseen slices, {split.kind.split(' (')[0]}"})
        rows.append(row)
    # one column per model: a dozen fields with long texts fit the page's width this way round
    st.dataframe(side_by_side(rows), width="stretch", height="content")
    cross_source_table({n: model_card(n) for n in names})

st.caption(
    "Data: Brain Tumor MRI Dataset (CC0; Figshare, SARTAJ, Br35H); Alzheimer's Dataset (4 classes, Kaggle); "
    "LGG Segmentation Dataset (TCGA/TCIA; Buda et al., Computers in Biology and Medicine 2019). "
    "Uploads are processed in memory and never stored."
)
