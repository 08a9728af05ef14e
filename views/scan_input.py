"""Where a page's scans come from: dropped files (read once per content, in memory only; DICOM series
grouped), the session's open scan, or a bundled sample; the file picker and the errors of unreadable files."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from mri_core.case import read_scans
from mri_core.display import display_name
from mri_core.io import ImageStack, UnreadableImage
from mri_core.samples import list_samples
from views.session_case import current_case


@st.cache_data(show_spinner="Reading files…", max_entries=8)
def _read(files: tuple[tuple[str, bytes], ...]) -> list[tuple[str, ImageStack | UnreadableImage, str]]:
    """``case.read_scans``, cached by the files' bytes (in memory only)."""
    return read_scans(list(files))


@dataclass
class Input:
    label: str
    stack: ImageStack | None
    error: str | None = None
    truth: str | None = None  # known answer, for bundled samples
    mask_path: str | None = None  # ground-truth mask, for bundled LGG samples
    key: str = ""  # content hash: the case's key
    sample: bool = False


def _uploads_changed(widget_key: str) -> None:
    """The user emptied the uploader (a file's ✕): the scan and the set of files it held are closed
    too. Leaving the page drops the widget's files without this call, so they stay open across pages."""
    if not st.session_state.get(widget_key):
        st.session_state.pop(f"{widget_key}_kept", None)
        case = current_case()
        if case is not None and not case.sample:
            st.session_state.pop("case", None)


def _as_inputs(files: tuple[tuple[str, bytes], ...]) -> list[Input]:
    return [Input(label, None, str(result)) if isinstance(result, UnreadableImage) else Input(label, result, key=key)
            for label, result, key in _read(files)]


def _kept_upload(widget_key: str, close_key: str) -> list[Input] | None:
    """The several files last dropped on this uploader, while the session's open scan is one of them:
    Streamlit empties an uploader whenever another page runs, and a table of 40 slices should not be
    lost to a look at the mask page. None once the user closes them or opens another scan."""
    files = st.session_state.get(f"{widget_key}_kept")
    case = current_case()
    if not files or case is None:
        return None
    inputs = _as_inputs(files)  # read (from the cache) once: hashing the files' bytes is the cost
    if case.key not in {i.key for i in inputs}:
        return None
    c1, c2 = st.columns([4, 1])
    c1.info(f"Reading the {len(files)} files dropped here earlier in this session. Drop others above to read them instead.")
    c2.button("Close these files", key=close_key, on_click=_close, args=(widget_key,))
    return inputs


def _close(widget_key: str | None = None) -> None:
    """The user closed the open scan (and the files kept for ``widget_key``): forgotten before the
    page runs again, so that run draws neither them nor the box that offered to close them."""
    if widget_key:
        st.session_state.pop(f"{widget_key}_kept", None)
    st.session_state.pop("case", None)


def choose_inputs(task: str, key: str, multiple: bool = True, upload_key: str | None = None) -> list[Input]:
    """Uploaded files (any format, DICOM series grouped); else the scan this session has open
    (from any page, until closed); else a bundled sample. ``upload_key``: the uploader's key
    prefix when it must outlive a task switch (default ``key``)."""
    widget_key = f"{upload_key or key}_upload"
    uploads = st.file_uploader(
        "Drop MRI slices here (PNG, JPEG, TIFF, BMP, DICOM, NIfTI)",
        accept_multiple_files=multiple, key=widget_key, on_change=_uploads_changed, args=(widget_key,),
        help="Files are read in memory and never stored. Several DICOM files of one series become one stack.",
    )
    if uploads and not multiple:
        uploads = [uploads]
    if uploads:
        files = tuple((u.name, u.getvalue()) for u in uploads)
        if len(files) > 1:
            st.session_state[f"{widget_key}_kept"] = files  # bytes the uploader already holds: no copy
        else:
            st.session_state.pop(f"{widget_key}_kept", None)
        return _as_inputs(files)
    kept = _kept_upload(widget_key, close_key=f"{key}_close_files")
    if kept:
        return kept
    case = current_case()
    if case is not None and not case.sample:
        # The scan opened on another page (or before a task switch) stays open until closed.
        c1, c2 = st.columns([4, 1])
        c1.info(f"Reading **{case.name}** from this session (slice {case.index + 1} of {case.stack.n_slices}). "
                "Drop another file above to read it instead.")
        c2.button("Close this scan", key=f"{key}_close", on_click=_close)
        return [Input(case.name, case.stack, key=case.key, truth=case.truth, mask_path=case.truth_mask_path)]
    samples = list_samples(task)
    if not samples:
        st.info("Upload a file to begin.")
        return []
    names = [s.path.name for s in samples]
    start = names.index(case.name) if case is not None and case.name in names else 0  # the sample another page showed
    pick = st.selectbox("…or try a bundled sample (from our validation split)", range(len(samples)), index=start,
                        format_func=lambda i: f"{samples[i].path.name} ({display_name(samples[i].truth)})", key=f"{key}_sample")
    s = samples[pick]
    (_, result, k), = _read(((s.path.name, s.path.read_bytes()),))
    if isinstance(result, UnreadableImage):
        return [Input(s.path.name, None, str(result))]
    return [Input(s.path.name, result, truth=s.truth, mask_path=str(s.mask_path) if s.mask_path else None, key=k,
                  sample=True)]


def file_picker(inputs: list[Input], label: str, key: str) -> Input:
    """One of several readable files, starting at the session's open scan when it is among them (the
    file looked at before a visit to another page), else the first."""
    case = current_case()
    keys = [i.key for i in inputs]
    start = keys.index(case.key) if case is not None and case.key in keys else 0
    return inputs[st.selectbox(label, range(len(inputs)), index=start, format_func=lambda i: picker_labels(inputs)[i], key=key)]


def picker_labels(inputs: list[Input]) -> list[str]:
    """The files' names, numbered in upload order where two share a name (two "slice.png" from two
    folders), with the start of each one's content hash so the same name never reads as the same scan."""
    names = [i.label for i in inputs]
    return [f"{n}. {name} ({item.key[:8]})" if names.count(name) > 1 else name
            for n, (name, item) in enumerate(zip(names, inputs), 1)]


def show_errors(inputs: list[Input]) -> list[Input]:
    """Say what was wrong with each unreadable file; return the readable ones."""
    for item in inputs:
        if item.error:
            st.error(f"**{item.label}**: {item.error}")
    return [i for i in inputs if i.stack is not None]
