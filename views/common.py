"""What every page shares: the list of pages, the preamble and disclaimer, cached models, task and
model pickers, reading uploads or samples.

Models live in ``st.cache_resource`` (one object per process, shared by every session and
never mutated); decoded uploads in ``st.cache_data`` keyed by their bytes, in memory only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from mri_core import inference, models
from mri_core.cards import Card
from mri_core.case import Case, content_key
from mri_core.display import display_name
from mri_core.io import ImageStack, UnreadableImage, read_images
from mri_core.report import CaseReport
from mri_core.samples import list_samples
from mri_core.tasks import TASKS

DISCLAIMER = (
    "Research and teaching use only. MRI Insight supports and does not replace a radiologist's reading."
)


@dataclass(frozen=True)
class PageSpec:
    path: str  # relative to app.py
    title: str
    icon: str
    group: str  # the sidebar heading it is listed under
    url_path: str | None = None  # None: the default page, at the root
    default: bool = False
    admin: bool = False  # listed for admins only


PAGES = (
    PageSpec("views/home.py", "Home", ":material/home:", "MRI Insight", default=True),
    PageSpec("views/predict.py", "Upload & predict", ":material/search:", "Read a scan", "predict"),
    PageSpec("views/mask.py", "Tumour mask", ":material/edit:", "Read a scan", "mask"),
    PageSpec("views/compare.py", "Model comparison", ":material/bar_chart:", "Models", "compare"),
    PageSpec("views/activations.py", "Activation viewer", ":material/layers:", "Models", "activations"),
    PageSpec("views/cases.py", "Cases", ":material/folder_open:", "Read a scan", "cases"),
    PageSpec("views/audit.py", "Audit trail", ":material/policy:", "Administration", "audit", admin=True),
)


def visible_pages(identity) -> list[PageSpec]:
    """The pages listed for this user: admin pages for admins only."""
    return [p for p in PAGES if identity.is_admin or not p.admin]


def navigation():
    """``st.navigation`` over ``PAGES``, grouped as listed; made on every run (a page object runs once)."""
    groups: dict[str, list] = {}
    for p in visible_pages(current_identity()):
        page = st.Page(p.path, title=p.title, icon=p.icon, default=p.default, **({"url_path": p.url_path} if p.url_path else {}))
        groups.setdefault(p.group, []).append(page)
    return st.navigation(groups)


# The choices a user makes once and expects to find again after visiting another page. Streamlit
# forgets a widget's value at the end of any run that does not draw it (every run of another
# page); setting the value again on each run makes it the session's, which is kept.
KEPT_CHOICES = ("predict_task", "predict_model_", "act_task", "act_model_", "act_only_convs", "cmp_task",
                "cmp_models_", "cmp_source", "cmp_folder", "mask_model", "mask_opacity", "mask_style", "mask_colour")


def keep_choices() -> None:
    """Carry the task, model and display choices of every page through runs of the other pages."""
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(KEPT_CHOICES)]:
        st.session_state[key] = st.session_state[key]


def page_spec(script: str) -> PageSpec:
    """The entry of ``PAGES`` for a page's script file (its ``__file__``)."""
    return next(p for p in PAGES if Path(p.path).name == Path(script).name)


def page_header(script: str) -> None:
    """A page's preamble: its title (as listed in ``PAGES``) and the disclaimer."""
    st.title(page_spec(script).title)
    st.caption(DISCLAIMER)


@st.cache_resource(show_spinner="Loading model…")
def _load_model(name: str, models_dir: str) -> models.LoadedModel:
    return models.load(name)


def get_model(name: str) -> models.LoadedModel:
    # The folder is part of the key so a different models/ (tests, MRI_MODELS_DIR) never hits a stale entry.
    return _load_model(name, str(models.default_root()))


def model_card(name: str) -> Card:
    """The model's card, from the registry's cache (read again when its file changes)."""
    return models.read_card(name)


def task_picker(key: str, kinds: tuple[str, ...] = ("classifier", "segmenter"), horizontal: bool = True) -> str:
    options = [t for t, task in TASKS.items() if task.kind in kinds and models.list_models(t)]
    if not options:
        st.error("No trained model is installed in models/.")
        st.stop()
    return st.radio("Task", options, format_func=lambda t: TASKS[t].title, horizontal=horizontal, key=key)


def model_picker(task: str, key: str, label: str = "Model") -> models.LoadedModel:
    names = models.list_models(task)
    default = models.default_model(task)
    name = st.selectbox(label, names, index=names.index(default), key=key,
                        format_func=lambda n: f"{n} (default)" if n == default else n)
    return get_model(name)


def segmenter_picker(stacks: list[ImageStack], key: str) -> models.LoadedModel:
    """The tumour-mask model for this upload: the one ``models.segmenter_for`` picks (an upload with
    any grey file gets a one-sequence model, which reads a colour file's own channel of that
    sequence; the three-sequence model would read a grey file as three equal sequences), said and
    why; the user can still pick another. Grey and colour uploads keep separate choices, so a new
    grey upload is not held to a colour upload's model."""
    grey = any(not stack.is_color for stack in stacks)
    suggested, why = models.segmenter_for(grey=grey)
    names = models.list_models("lgg")
    name = st.selectbox("Model", names, index=names.index(suggested), key=f"{key}_grey" if grey else key,
                        format_func=lambda n: f"{n} (chosen for this upload)" if n == suggested else n)
    if name == suggested:
        (st.warning if grey and not model_card(name).is_single_sequence else st.caption)(why)
        if grey and any(stack.is_color for stack in stacks) and model_card(name).is_single_sequence:
            st.caption("Some files are in colour (three sequences): this model reads their channel of its sequence, "
                       "so every file is read the same way.")
    else:
        st.caption(f"You chose {name}. For this upload the app would use {suggested}: {why}")
    return get_model(name)


def mask_abstention(reason: str, advice: str = "") -> None:
    """The box that comes first where the mask model cannot judge the slice (``SliceMask.reason``)."""
    if reason:
        st.error(f"The model cannot judge this slice. {reason} Its mask below is for reference only{advice}.", icon="🚫")


MAX_CASES = 3  # cases kept per session (the current one and the last two files looked at): bounded memory


@st.cache_data(show_spinner="Reading files…", max_entries=8)
def _read(files: tuple[tuple[str, bytes], ...]) -> list[tuple[str, ImageStack | UnreadableImage, str]]:
    """(label, stack or error, content key) per result; a series joined from several files is
    keyed by the hash of its pixels and geometry, a single file by the hash of its bytes."""
    by_name = {name: content_key([data]) for name, data in files}
    out = []
    for label, result in read_images(list(files)):
        key = by_name.get(label)
        if key is None and isinstance(result, ImageStack):
            key = content_key([result.slices.tobytes(), repr((result.spacing_mm, result.slice_thickness_mm)).encode()])
        out.append((label, result, key or ""))
    return out


@dataclass
class Input:
    label: str
    stack: ImageStack | None
    error: str | None = None
    truth: str | None = None  # known answer, for bundled samples
    mask_path: str | None = None  # ground-truth mask, for bundled LGG samples
    key: str = ""  # content hash: the case's key
    sample: bool = False


def current_case() -> Case | None:
    """The case this session is reading (the last file opened on any page), or None."""
    return st.session_state.get("cases", {}).get(st.session_state.get("case"))


def open_case(item: Input) -> Case:
    """The session's case for ``item`` (made on first sight), now the current one: every page
    reads the same scan, slice, masks and edits from it."""
    cases: dict[str, Case] = st.session_state.setdefault("cases", {})
    case = cases.pop(item.key, None)
    if case is None:
        case = Case(item.key, item.label, item.stack, index=item.stack.n_slices // 2, sample=item.sample,
                    truth=item.truth, truth_mask_path=item.mask_path)
        from views import store_session; store_session.reopen(case)  # noqa: E702  issue 28: the user's saved copy; audit
    cases[item.key] = case  # most recent last
    while len(cases) > MAX_CASES:
        cases.pop(next(iter(cases)))
    st.session_state["case"] = item.key
    return case


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
    return inputs[st.selectbox(label, range(len(inputs)), index=start, format_func=lambda i: inputs[i].label, key=key)]


def show_errors(inputs: list[Input]) -> list[Input]:
    """Say what was wrong with each unreadable file; return the readable ones."""
    for item in inputs:
        if item.error:
            st.error(f"**{item.label}**: {item.error}")
    return [i for i in inputs if i.stack is not None]


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


@st.cache_data(show_spinner="Segmenting…", max_entries=16)
def _segment_volume(_loaded: models.LoadedModel, _stack: ImageStack, content: str, model_path: str):
    preds = inference.segment(_loaded, [_stack.slice(k) for k in range(_stack.n_slices)], volume=True)
    return np.stack([p.mask for p in preds]), np.asarray([p.tumor_probability for p in preds]), tuple(p.reason for p in preds)


def segment_volume(loaded: models.LoadedModel, stack: ImageStack, content: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Masks (n, H, W), tumour probabilities and the reasons the model cannot judge a slice ("" where
    it can) of a whole file segmented as one volume (its main lesion kept), cached per content hash
    and model so the slice slider does not recompute it."""
    return _segment_volume(loaded, stack, content, str(loaded.path))


def case_segmentation(case: Case, loaded: models.LoadedModel) -> None:
    """Put the model's masks for the whole scan into the case (once per case and model)."""
    if not case.has_model(loaded.name):
        case.set_model_result(loaded.name, *segment_volume(loaded, case.stack, case.key))
        from views import store_session; store_session.model_run(case, loaded)  # noqa: E702  issue 28: audit


def pdf_download(container, report: CaseReport, stack: ImageStack, key: str) -> None:
    """A "Report (PDF)" button (made on click, so a rerun costs nothing); patient details go in
    only when the user turns them on."""
    from mri_core.report import pdf_report

    if stack.patient and container.toggle("Patient details in the PDF", value=False, key=f"{key}_patient",
                                           help="Off: the report carries no patient identifier."):
        report.patient = dict(stack.patient)
    from views import store_session  # issue 28: the report is audited (with whether it carried patient details)

    container.download_button("Report (PDF)", lambda: pdf_report(report), "mri_insight_report.pdf", "application/pdf",
                              key=key, on_click=store_session.exported,
                              args=(current_case(), "pdf", report.model_name, "report"),
                              kwargs={"patient_details": bool(report.patient)})


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


def side_by_side(rows: list[dict], key: str = "model") -> "pd.DataFrame":
    """Rows of one dict per model as a table with one column per model and one row per field (as
    text): a dozen fields for two or three models fit the page's width instead of running off it."""
    import pandas as pd

    def text(v):
        return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    return pd.DataFrame({r[key]: {k: text(v) for k, v in r.items() if k != key} for r in rows})


def cross_source_rows(cards: dict[str, Card]) -> list[dict]:
    """One row per model and other source (``metrics.cross_source`` in the cards, from
    ``scripts/score_shift.py``): sensitivity, specificity and abstentions, each with its split."""
    rows = []
    for name, card in cards.items():
        for source, block in (card.metrics.other_sources if card.metrics else {}).items():
            pct = lambda v: "–" if v is None else f"{v:.0%}"  # noqa: E731
            rows.append({"model": name, "source": source, "sensitivity": pct(block.sensitivity),
                         "specificity": pct(block.specificity), "abstained": pct(block.abstained),
                         "wrong calls abstained or warned": pct(block.wrong_abstained_or_warned),
                         "images": block.n, "split": block.split})
    return rows


def current_identity():
    """The session's user (``mri_core.access.Identity``): set by the sign-in gate in ``app.py``;
    single-user mode (no sign-in configured) is ``access.SINGLE_USER``."""
    from mri_core.access import SINGLE_USER

    return st.session_state.get("identity", SINGLE_USER)
