"""Reading a slice: the slice slider, window/level and zoom, the file's notes and (on request) its patient
details, and the PDF report button."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from mri_core.case import Case
from mri_core.io import ImageStack
from mri_core.report import CaseReport


def slice_picker(case: Case, key: str) -> int:
    """The case's slice, chosen on a slider numbered from 1 as in the reports; every page moves
    the same case's slice. Returns the 0-based index."""
    n = case.stack.n_slices
    if n == 1:
        return 0
    case.index = st.slider("Slice", 1, n, case.index + 1, key=f"{key}_{case.key[:12]}") - 1
    return case.index

def show_notes(stack: ImageStack) -> None:
    for note in stack.notes:
        st.caption(f"ℹ️ {note}")

def patient_details(stack: ImageStack, key: str) -> None:
    """DICOM patient fields stay hidden unless the user asks for them."""
    if stack.patient and st.toggle("Show patient details from the DICOM header", value=False, key=key):
        st.table({k: [v] for k, v in stack.patient.items()})

@dataclass
class Reading:
    level: float = 0.5
    width: float = 1.0
    zoom: float = 1.0
    centre: tuple[float, float] = (0.5, 0.5)

def reading_controls(stack: ImageStack, key: str) -> Reading:
    """Window/level (the file's presets where it has them), zoom and where to look, in an expander."""
    with st.expander("Reading controls: window/level, zoom"):
        c1, c2, c3 = st.columns(3)
        presets = {"as read": (0.5, 1.0), **{name: (lv, wd) for name, lv, wd in stack.windows}}
        preset = c1.selectbox("Window preset" + (" (from the file)" if stack.windows else ""), list(presets),
                              key=f"{key}_preset")
        lv0, wd0 = presets[preset]
        level = c2.slider("Level", 0.0, 1.0, float(min(max(lv0, 0.0), 1.0)), 0.01, key=f"{key}_level_{preset}")
        width = c3.slider("Width", 0.05, 2.0, float(min(max(wd0, 0.05), 2.0)), 0.05, key=f"{key}_width_{preset}")
        z1, z2, z3 = st.columns(3)
        zoom = z1.slider("Zoom", 1.0, 4.0, 1.0, 0.25, key=f"{key}_zoom")
        cy = z2.slider("Centre, top to bottom", 0.0, 1.0, 0.5, 0.05, key=f"{key}_cy", disabled=zoom == 1.0)
        cx = z3.slider("Centre, left to right", 0.0, 1.0, 0.5, 0.05, key=f"{key}_cx", disabled=zoom == 1.0)
    return Reading(level, width, zoom, (cy, cx))

def pdf_download(container, report: CaseReport, stack: ImageStack, key: str) -> None:
    """A "Report (PDF)" button (made on click, so a rerun costs nothing); patient details go in
    only when the user turns them on."""
    from mri_core.report import pdf_report

    if stack.patient and container.toggle("Patient details in the PDF", value=False, key=f"{key}_patient",
                                           help="Off: the report carries no patient identifier."):
        report.patient = dict(stack.patient)
    container.download_button("Report (PDF)", lambda: pdf_report(report), "mri_insight_report.pdf", "application/pdf",
                              key=key, on_click="ignore")
