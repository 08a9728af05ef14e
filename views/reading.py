"""Reading a slice: the slice slider, window/level and zoom, the file's notes and (on request) its patient
details, and the PDF report button."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from mri_core.annotate import window_presets

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
    """Window/level (the file's presets where it has them, in the scanner's units where the file gives
    them), zoom and where to look, in an expander."""
    with st.expander("Reading controls: window/level, zoom"):
        c1, c2, c3 = st.columns(3)
        presets = window_presets(stack)
        preset = c1.selectbox("Window preset" + (" (from the file)" if stack.windows else ""), list(presets),
                              key=f"{key}_preset")
        lv0, wd0 = presets[preset]
        lv0, wd0 = float(min(max(lv0, 0.0), 1.0)), float(min(max(wd0, 0.05), 2.0))
        if stack.value_range is None:  # no scanner units: the slice's own 0-1 scale
            level = c2.slider("Level (0-1 of the slice's range)", 0.0, 1.0, lv0, 0.01, key=f"{key}_level_{preset}")
            width = c3.slider("Width (0-1 of the slice's range)", 0.05, 2.0, wd0, 0.05, key=f"{key}_width_{preset}")
        else:
            v0, v1 = stack.value_range
            span = abs(v1 - v0)
            step = float(10 ** np.floor(np.log10(max(span / 200, 1e-6))))
            level_s = c2.slider("Level (scanner units)", float(min(v0, v1)), float(max(v0, v1)),
                                float(np.round(stack.scanner_value(lv0) / step) * step), step, key=f"{key}_level_{preset}")
            width_s = c3.slider("Width (scanner units)", float(np.round(0.05 * span / step) * step),
                                float(np.round(2 * span / step) * step), float(np.round(wd0 * span / step) * step), step,
                                key=f"{key}_width_{preset}")
            level, width = (level_s - v0) / (v1 - v0), width_s / span
        z1, z2, z3 = st.columns(3)
        zoom = z1.slider("Zoom", 1.0, 4.0, 1.0, 0.25, key=f"{key}_zoom")
        cy = z2.slider("Centre, top to bottom", 0.0, 1.0, 0.5, 0.05, key=f"{key}_cy", disabled=zoom == 1.0)
        cx = z3.slider("Centre, left to right", 0.0, 1.0, 0.5, 0.05, key=f"{key}_cx", disabled=zoom == 1.0)
    return Reading(level, width, zoom, (cy, cx))


def pdf_download(container, report: CaseReport, stack: ImageStack, key: str) -> None:
    """A "Report (PDF)" button (its click is an audit row); patient details go in
    only when the user turns them on."""
    from mri_core.report import pdf_report

    if stack.patient and container.toggle("Patient details in the PDF", value=False, key=f"{key}_patient",
                                           help="Off: the report carries no patient identifier."):
        report.patient = dict(stack.patient)
    from views import store_session  # issue 28: the report is audited (with whether it carried patient details)
    from views.session_case import current_case

    # made on each run: a download made on request is dropped when its click also runs the audit callback
    container.download_button("Report (PDF)", pdf_report(report), "mri_insight_report.pdf", "application/pdf",
                              key=key, on_click=store_session.exported,
                              args=(current_case(), "pdf", report.model_name, "report"),
                              kwargs={"patient_details": bool(report.patient)})
