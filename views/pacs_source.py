"""The hospital's PACS on the reading pages: a "From PACS" source beside the file drop (search,
studies, series, Open with a progress bar) and "Send to PACS" beside the mask page's downloads.

Shown only when a ``[pacs]`` section (or ``MRI_PACS_URL``) configures it, and, where sign-in
exists, only to a signed-in user. The series opened becomes the session's case exactly as an
upload does (``views.common``'s reader, content key and ``open_case``); the session remembers
which cases came from the PACS, so only those offer to send results back.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from mri_core import pacs, segmentation
from mri_core.access import SINGLE_USER
from mri_core.pacs import PacsConfig, PacsError
from mri_core.store.audit import SERIOUS_FAILURE, SUCCESS
from views import store_session
from views.scan_input import Input, _as_inputs
from views.session_case import current_case, current_identity, open_case

FILES, PACS = "Files", "From PACS"


@dataclass(frozen=True)
class Origin:
    """Where a case opened from the PACS came from (kept in the session, never logged)."""

    series: pacs.Series
    label: str


def _audit(event: str, failed: bool = False, **detail) -> None:
    """An audit row for a PACS query, retrieve or store: counts and flags only (no UID, no name)."""
    store_session.audit(event, SERIOUS_FAILURE if failed else SUCCESS, **detail)


def _opened() -> dict[str, Origin]:
    return st.session_state.setdefault("pacs_opened", {})


def pacs_config() -> PacsConfig | None:
    """The PACS this user may use: configured, and (where sign-in exists) signed in; else None."""
    try:
        settings = dict(st.secrets.get("pacs", {}))
    except Exception:  # no secrets file at all: the environment may still configure it
        settings = {}
    try:
        config = pacs.config_from(settings)
    except PacsError as exc:
        st.error(str(exc))
        return
    return config if config is not None and current_identity() is not None else None


def choose(key: str) -> list[Input] | None:
    """The "Files / From PACS" choice; None when the PACS is not offered or "Files" is chosen (the
    page then shows its file drop), else the case opened from the PACS ([] until one is)."""
    config = pacs_config()
    if config is None:
        return
    case = current_case()
    start = 1 if case is not None and case.key in _opened() else 0
    if st.radio("Source", [FILES, PACS], index=start, horizontal=True, key=f"{key}_source") == FILES:
        return
    origin = _opened().get(case.key) if case is not None else None
    with st.expander("Find a study on the PACS", expanded=origin is None):
        _search_and_open(config, key)
    if origin is None:
        st.info("Search the PACS and open a series to begin.")
        return []
    st.caption(f"Opened from the PACS ({config.host}): {origin.label}.")
    return [Input(case.name, case.stack, key=case.key)]


def _search_form(config: PacsConfig, key: str) -> None:
    with st.form(f"{key}_pacs_search"):
        c1, c2, c3 = st.columns(3)
        patient_id = c1.text_input("Patient ID", key=f"{key}_pacs_pid")
        name = c2.text_input("Patient name (any part)", key=f"{key}_pacs_name")
        accession = c3.text_input("Accession number", key=f"{key}_pacs_accession")
        d1, d2, d3 = st.columns(3)
        date_from = d1.date_input("Study date from", value=None, key=f"{key}_pacs_from")
        date_to = d2.date_input("to", value=None, key=f"{key}_pacs_to")
        modality = d3.text_input("Modality in study (e.g. MR)", key=f"{key}_pacs_modality")
        if st.form_submit_button("Search the PACS"):
            st.session_state.pop("pacs_studies", None)
            try:
                studies = pacs.search_studies(config, patient_id=patient_id, patient_name=name, date_from=date_from,
                                              date_to=date_to, modality=modality, accession=accession)
                st.session_state["pacs_studies"] = studies
                _audit("pacs-query", query_level="study", rows=len(studies))
            except PacsError as exc:
                _audit("pacs-query", failed=True, query_level="study")
                st.error(str(exc))


def _series_of(config: PacsConfig, study: pacs.Study) -> list[pacs.Series]:
    listed = st.session_state.setdefault("pacs_series", {})
    if study.uid not in listed:
        try:
            listed[study.uid] = pacs.list_series(config, study.uid)
        except PacsError:
            _audit("pacs-query", failed=True, query_level="series")
            raise
        _audit("pacs-query", query_level="series", rows=len(listed[study.uid]))
    return listed[study.uid]


def _search_and_open(config: PacsConfig, key: str) -> None:
    """Search, pick a study and a series, open it (the session's case from the next run)."""
    _search_form(config, key)
    studies: list[pacs.Study] = st.session_state.get("pacs_studies") or []
    if not studies:
        return
    st.dataframe([{"patient ID": s.patient_id, "name": s.patient_name, "date": s.date, "description": s.description,
                   "accession": s.accession, "modalities": s.modalities, "series": s.n_series, "images": s.n_instances}
                  for s in studies], hide_index=True, width="stretch")
    pick = st.selectbox("Study", range(len(studies)), key=f"{key}_pacs_study",
                        format_func=lambda i: f"{studies[i].patient_name} · {studies[i].date} · {studies[i].description or 'study'}")
    try:
        series = _series_of(config, studies[pick])
    except PacsError as exc:
        st.error(str(exc))
        return
    st.dataframe([{"series": s.number, "description": s.description, "modality": s.modality, "images": s.n_instances,
                   "opens": "yes" if not s.refusal else "no: " + s.refusal} for s in series], hide_index=True, width="stretch")
    chosen = series[st.selectbox("Series", range(len(series)), key=f"{key}_pacs_series",
                                 format_func=lambda i: series[i].label)]
    if chosen.refusal:
        st.warning(chosen.refusal)
    if st.button("Open this series", key=f"{key}_pacs_open", disabled=bool(chosen.refusal), type="primary"):
        _open(config, chosen)  # opened: the page runs again with it as the case; else the error is shown


def _open(config: PacsConfig, series: pacs.Series) -> None:
    """Retrieve the series with a progress bar, read it as an upload is read, check it is MR, and
    make it the session's case."""
    bar = st.progress(0.0, text="Retrieving the series from the PACS…")
    try:
        got = pacs.retrieve_series(config, series, progress=lambda f: bar.progress(f, text=f"Retrieved {f:.0%} of the series"))
    except PacsError as exc:
        bar.empty()
        _audit("pacs-retrieve", failed=True, source="pacs")
        st.error(str(exc))
        return
    bar.empty()
    inputs = _as_inputs(got.files)
    readable = [i for i in inputs if i.stack is not None]
    if len(readable) != 1 or len(inputs) != 1:
        st.error(inputs[0].error if inputs and inputs[0].error else
                 "The series' images did not read as one stack of slices, so it is not opened.")
        return
    refusal = pacs.refusal_of(readable[0].stack)
    if refusal:
        st.error(refusal)
        return
    item = readable[0]
    label = f"{series.description or series.modality} ({item.stack.n_slices} slices)"
    item = Input(f"PACS: {label}", item.stack, key=item.key)
    fetched = f"{got.n_bytes / 2**20:.1f} MB downloaded" if got.downloaded else "fetched earlier in this session: no new download"
    _opened()[item.key] = Origin(series, f"{label}, {fetched}")
    store_session.audit("pacs-retrieve", SUCCESS, item.key, source="pacs", n_instances=len(got.files),
                        n_slices=item.stack.n_slices, modality=item.stack.modality)
    open_case(item)
    st.rerun()  # drawn again as the session's case, the search folded away


def send_button(case, loaded, index: int, slice_mask, volume: float | None, report) -> None:
    """"Send to PACS" beside the downloads: the SEG, the measurement report and the PDF into the
    source study. Shown only for a case opened from the PACS, when sending is allowed."""
    from mri_core.report import pdf_report

    config = pacs_config()
    if config is None or case.key not in _opened():
        return
    if not config.allow_send:
        st.caption("Sending results to the PACS is turned off in this app's settings.")
        return
    origin = case.mask_origin(loaded.name)
    identity = current_identity()
    editor = identity.display_name if origin != "AUTOMATIC" and identity is not None and identity != SINGLE_USER else ""
    present = None if slice_mask.reason else slice_mask.tumour_probability >= segmentation.PRESENCE_CUT
    c1, c2 = st.columns([1, 3])
    if c1.button("Send to PACS", key="mask_pacs_send", help="Store the mask (DICOM SEG), the measurements (DICOM SR) "
                 "and the PDF report in this scan's study on the PACS, each as a new series."):
        findings = pacs.Findings(index, slice_mask.measurements.as_dict(), volume, present, loaded.name, loaded.version,
                                 origin=origin, editor=editor)
        try:
            with st.spinner("Storing on the PACS…"):
                stored = pacs.send_results(config, case.masks(loaded.name), case.stack, findings, pdf_report(report))
            st.session_state["pacs_sent"] = (case.key, f"Stored on the PACS in this scan's study: {', '.join(stored.kinds)} "
                                                       f"({stored.n_objects} new series, {stored.n_bytes / 1024:.0f} kB).")
            store_session.audit("pacs-store", SUCCESS, case.key, loaded.name, n_instances=stored.n_objects,
                                edited=findings.edited, slice=index + 1)
        except PacsError as exc:
            store_session.audit("pacs-store", SERIOUS_FAILURE, case.key, loaded.name, edited=findings.edited)
            st.session_state["pacs_sent"] = (case.key, "")
            c2.error(f"{exc} The DICOM SEG, the report and the PDF stay downloadable above.")
    sent = st.session_state.get("pacs_sent")
    if sent and sent[0] == case.key and sent[1]:
        c2.success(sent[1])
