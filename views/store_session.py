"""The session's side of the case database and the audit trail (``mri_core.store``).

Pages call one line each: ``reopen`` when a scan is first opened in the session, ``model_run``
when a model has run on it, ``save`` after the page has taken the user's edits, ``exported`` as a
download button's ``on_click``. The rest is here:

- a case the user opened before comes back with every edit (their last saved copy of that scan);
- each change is saved on the run that made it; a save from an older copy (another session saved
  since) becomes a new copy of the case, and the page says so: nothing is overwritten;
- when the database cannot be reached, is read-only or full, the case and the audit events stay
  in the session, the page says so, and both are written on the first run after it returns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import streamlit as st

from mri_core import models
from mri_core.case import Case
from mri_core.store import PixelPolicy, Store, StoreUnavailable, database_url
from mri_core.access import Identity
from mri_core.store.audit import MINOR_FAILURE, SUCCESS, AuditEvent, client_address, weights_sha256
from mri_core.store.cases import Call, CaseSnapshot, decode_pixels, encode_pixels, restore, snapshot
from views.session_case import current_identity

PROXIES_ENV = "MRI_INSIGHT_TRUSTED_PROXIES"  # comma-separated addresses whose X-Forwarded-For is believed


def _secrets(section: str) -> dict:
    try:
        return dict(st.secrets.get(section, {}))
    except Exception:  # no secrets.toml at all: single-user mode's default
        return {}


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return Store(url)


def store() -> Store:
    """The database of this server (one ``Store`` per URL and process)."""
    return _store(database_url(_secrets("database")))


def trusted_proxies() -> tuple[str, ...]:
    listed = os.environ.get(PROXIES_ENV, "").split(",") + list(_secrets("audit").get("trusted_proxies", []))
    return tuple(p.strip() for p in listed if p.strip())


def client() -> str:
    context = st.context
    return client_address(context.ip_address, context.headers.get("X-Forwarded-For"), trusted_proxies())


# --------------------------------------------------------------------------- the audit trail


def audit(event: str, outcome: int = SUCCESS, case_hash: str | None = None, model: str | None = None,
          identity: Identity | None = None, **detail) -> None:
    """Record an event for ``identity`` (default: the session's user), queued in the session while the
    database is away. The sign-in gate names the user itself: a refused user is no session user."""
    queue = st.session_state.setdefault("store_audit_queue", [])
    queue.append(AuditEvent(event, identity or current_identity(), client(), outcome, case_hash, model, _weights(model),
                            detail))
    _flush_audit()


def _weights(model: str | None) -> str | None:
    try:
        return weights_sha256(models.model_dir(model) / models.MODEL_FILE) if model else None
    except OSError:  # not a registered model (a test's own)
        return None


def _flush_audit() -> bool:
    queue = st.session_state.get("store_audit_queue", [])
    if not queue:
        return True
    try:
        store().audit(*queue)
    except StoreUnavailable:
        return False
    queue.clear()
    return True


# --------------------------------------------------------------------------- cases


@dataclass
class CaseRecord:
    """What the session knows of a case's saved copy."""

    case_id: int | None = None  # None: not saved yet
    version: int = 0
    branch: int = 0
    notes: str = ""
    calls: dict[tuple[str, int], Call] = field(default_factory=dict)
    saved: CaseSnapshot | None = None  # as last saved (or read back)
    saved_digest: str | None = None
    edits_digest: str | None = None  # of the hand edits as last seen: a change is a "mask-edited" event
    pixels_saved: bool = False
    failed: str | None = None  # StoreUnavailable.kind of the last save that failed


def record(case: Case) -> CaseRecord:
    return st.session_state.setdefault("store_records", {}).setdefault(case.key, CaseRecord())


def _edits_digest(snap: CaseSnapshot) -> str:
    return CaseSnapshot({"histories": snap.manifest["histories"], "models": [], "calls": [], "index": 0},
                        {k: v for k, v in snap.arrays.items() if k.startswith("edit")}).digest()


def reopen(case: Case) -> None:
    """A scan newly opened in this session: put back the user's last saved copy of it (every edit,
    the model's masks, the calls, the notes) and record that the file was opened."""
    if case.sample:
        return
    preferred = st.session_state.pop("store_open_case_id", None)  # a copy chosen on the Cases page
    rec = record(case)
    try:
        stored = store().load_case(current_identity(), preferred) if preferred else store().latest_case(current_identity(), case.key)
        if stored is not None:
            restore(case, stored.snapshot)
    except (StoreUnavailable, ValueError) as error:
        message = str(error) if isinstance(error, StoreUnavailable) else "The saved copy of this scan does not match it."
        st.warning(f"{message} Your saved edits of this scan cannot be shown just now; new edits stay in this session "
                   "and are saved as a separate copy when the database is back.", icon="⚠️")
        stored = None
    if stored is not None:
        s = stored.summary
        rec.case_id, rec.version, rec.branch, rec.notes, rec.pixels_saved = s.case_id, s.version, s.branch, s.notes, s.has_pixels
        rec.calls = {(c.model, c.slice): c for c in stored.snapshot.calls()}
        rec.saved, rec.saved_digest = stored.snapshot, stored.snapshot.digest() + s.notes
        st.toast(f"Reopened your saved case: {stored.snapshot.edited_slices()} slice(s) edited by hand, saved "
                 f"{s.updated_at:%Y-%m-%d %H:%M} UTC.", icon="📂")
    rec.edits_digest = _edits_digest(snapshot(case, []))
    modality = case.stack.modality if case.stack.modality.isalpha() and case.stack.modality.isupper() else "unknown"
    audit("file-opened", case_hash=case.key, file_format=case.stack.format, n_slices=case.stack.n_slices, modality=modality,
          reopened=stored is not None, source="stored-pixels" if preferred else "upload")


def open_stored(case_id: int) -> Case | None:
    """Reopen one of the user's saved cases from its kept pixels (None when it has none)."""
    from views.scan_input import Input
    from views.session_case import open_case

    stored = store().load_case(current_identity(), case_id)
    if stored is None or stored.pixels is None:
        return None
    st.session_state.get("cases", {}).pop(stored.summary.content_hash, None)  # this copy, not another in the session
    st.session_state["store_open_case_id"] = case_id
    return open_case(Input(stored.summary.name, decode_pixels(stored.pixels), key=stored.summary.content_hash))


def model_run(case: Case, loaded: models.LoadedModel, index: int | None = None, prediction=None) -> None:
    """A model ran on the case (a classifier on slice ``index``): audited once per session, and a
    classifier's call kept with the case."""
    if case.sample:
        return
    seen = st.session_state.setdefault("store_model_runs", set())
    if (case.key, loaded.name, index) in seen:
        return
    seen.add((case.key, loaded.name, index))
    detail = {"task": loaded.task, "n_slices": case.stack.n_slices}
    if prediction is not None:
        record(case).calls[(loaded.name, index)] = Call(loaded.name, index, prediction.label, float(prediction.confidence),
                                                        bool(prediction.reliable))
        detail |= {"slice": index + 1, "reliable": bool(prediction.reliable)}
        if prediction.reliable:
            detail["call"] = prediction.label
    audit("model-run", case_hash=case.key, model=loaded.name, **detail)


def set_notes(case: Case, notes: str) -> None:
    record(case).notes = notes
    save(case)


def save(case: Case) -> None:
    """Save the case if anything changed since its last save (or its last save failed). Says when
    the database is away (the case stays in the session) and when a save became a new copy."""
    if case.sample:
        return
    rec = record(case)
    snap = snapshot(case, list(rec.calls.values()), previous=rec.saved)
    edits = _edits_digest(snap)
    if edits != rec.edits_digest:
        rec.edits_digest = edits
        audit("mask-edited", case_hash=case.key, edited_slices=snap.edited_slices())
    digest = snap.digest() + rec.notes
    if digest == rec.saved_digest and _flush_audit():
        return
    try:
        pixels = encode_pixels(case.stack) if not rec.pixels_saved and store().pixel_policy().store else None
        expected = (rec.case_id, rec.version) if rec.case_id is not None else None
        result = store().save_case(current_identity(), case.key, case.name, snap, rec.notes, expected, pixels)
    except StoreUnavailable as error:
        rec.failed = error.kind
        st.warning(f"{error} Your edits are kept in this session and will be saved when it is back: keep this tab open.",
                   icon="⚠️")
        return
    if rec.failed:
        st.success("The case database is back: your edits are saved.", icon="✅")
    rec.case_id, rec.version, rec.branch, rec.failed = result.case_id, result.version, result.branch, None
    rec.saved, rec.saved_digest, rec.pixels_saved = snap, digest, rec.pixels_saved or pixels is not None
    audit("case-saved", outcome=MINOR_FAILURE if result.conflict else SUCCESS, case_hash=case.key, version=result.version,
          branch=result.branch, conflict=result.conflict, pixels_stored=rec.pixels_saved)
    if result.conflict:
        st.warning(f"This case was saved from another session since you opened it. Both are kept: your edits are saved "
                   f"as copy {result.branch + 1} of the case (see Cases); the other copy is unchanged.", icon="🔀")


def exported(case: Case | None, fmt: str, model: str | None, event: str = "export", **detail) -> None:
    """A download button's ``on_click``: which format of which case was taken away."""
    if case is not None and not case.sample:
        audit(event, case_hash=case.key, model=model, format=fmt, **detail)


def pixel_policy() -> PixelPolicy:
    return store().pixel_policy()


def folder_evaluated(task: str, chosen: list[str], n_images: int, folder: str, samples: bool) -> None:
    """Models scored on a folder: audited once per session and choice (the folder's path is never recorded)."""
    seen = st.session_state.setdefault("store_folders", set())
    if (task, tuple(chosen), folder) in seen:
        return
    seen.add((task, tuple(chosen), folder))
    audit("folder-evaluated", task=task, models=list(chosen), n_models=len(chosen), n_images=n_images,
          source="sample" if samples else "server-folder")
