"""What every page shares: cached models, task and model pickers, reading uploads or samples.

Models live in ``st.cache_resource`` (one object per process, shared by every session and
never mutated); decoded uploads in ``st.cache_data`` keyed by their bytes, in memory only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import streamlit as st

from mri_core import inference, models
from mri_core.io import ImageStack, UnreadableImage, read_images
from mri_core.samples import list_samples
from mri_core.tasks import TASKS

DISCLAIMER = (
    "Research and teaching use only. MRI Insight supports and does not replace a radiologist's reading."
)


@st.cache_resource(show_spinner="Loading model…")
def _load_model(name: str, models_dir: str) -> models.LoadedModel:
    return models.load(name)


def get_model(name: str) -> models.LoadedModel:
    # The folder is part of the key so a different models/ (tests, MRI_MODELS_DIR) never hits a stale entry.
    return _load_model(name, str(models.MODELS_DIR))


@st.cache_data(show_spinner=False)
def _card(name: str, models_dir: str) -> dict:
    return models.read_card(name)


def model_card(name: str) -> dict:
    return _card(name, str(models.MODELS_DIR))


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


@st.cache_data(show_spinner="Reading files…", max_entries=32)
def _read(files: tuple[tuple[str, bytes], ...]) -> list[tuple[str, ImageStack | UnreadableImage]]:
    return read_images(list(files))


@dataclass
class Input:
    label: str
    stack: ImageStack | None
    error: str | None = None
    truth: str | None = None  # known answer, for bundled samples
    mask_path: str | None = None  # ground-truth mask, for bundled LGG samples


def choose_inputs(task: str, key: str, multiple: bool = True) -> list[Input]:
    """Uploaded files (any format, DICOM series grouped), or a bundled sample when none is given."""
    uploads = st.file_uploader(
        "Drop MRI slices here (PNG, JPEG, TIFF, BMP, DICOM, NIfTI)",
        accept_multiple_files=multiple,
        key=f"{key}_upload",
        help="Files are read in memory and never stored. Several DICOM files of one series become one stack.",
    )
    if uploads and not multiple:
        uploads = [uploads]
    if uploads:
        files = tuple((u.name, u.getvalue()) for u in uploads)
        return [
            Input(label, None, str(result)) if isinstance(result, UnreadableImage) else Input(label, result)
            for label, result in _read(files)
        ]
    samples = list_samples(task)
    if not samples:
        st.info("Upload a file to begin.")
        return []
    pick = st.selectbox("…or try a bundled sample (from our validation split)", range(len(samples)),
                        format_func=lambda i: samples[i].label, key=f"{key}_sample")
    s = samples[pick]
    (_, result), = _read(((s.path.name, s.path.read_bytes()),))
    if isinstance(result, UnreadableImage):
        return [Input(s.path.name, None, str(result))]
    return [Input(s.path.name, result, truth=s.truth, mask_path=str(s.mask_path) if s.mask_path else None)]


def show_errors(inputs: list[Input]) -> list[Input]:
    """Say what was wrong with each unreadable file; return the readable ones."""
    for item in inputs:
        if item.error:
            st.error(f"**{item.label}**: {item.error}")
    return [i for i in inputs if i.stack is not None]


def slice_picker(stack: ImageStack, key: str) -> int:
    if stack.n_slices == 1:
        return 0
    return st.slider("Slice", 0, stack.n_slices - 1, stack.n_slices // 2, key=key)


def show_notes(stack: ImageStack) -> None:
    for note in stack.notes:
        st.caption(f"ℹ️ {note}")


def patient_details(stack: ImageStack, key: str) -> None:
    """DICOM patient fields stay hidden unless the user asks for them."""
    if stack.patient and st.toggle("Show patient details from the DICOM header", value=False, key=key):
        st.table({k: [v] for k, v in stack.patient.items()})


def file_key(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:12]


def as_display(image: np.ndarray) -> np.ndarray:
    """A [0, 1] slice, gray or RGB, clipped for st.image."""
    return np.clip(image, 0.0, 1.0)


def stack_key(label: str, stack: ImageStack) -> str:
    """Identifies an uploaded file's pixels across reruns (edits and caches are keyed by it)."""
    return f"{label}-{stack.slices.shape}-{float(stack.slices.mean()):.6f}"


@st.cache_data(show_spinner="Segmenting…", max_entries=16)
def _segment_volume(_loaded: models.LoadedModel, _stack: ImageStack, stack_id: str, model_path: str):
    preds = inference.segment(_loaded, [_stack.slice(k) for k in range(_stack.n_slices)], volume=True)
    return np.stack([p.mask for p in preds]), np.asarray([p.tumor_probability for p in preds])


def segment_volume(loaded: models.LoadedModel, stack: ImageStack, stack_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Masks (n, H, W) and tumour probabilities of a whole file segmented as one volume (its
    main lesion kept), cached per file and model so the slice slider does not recompute it."""
    return _segment_volume(loaded, stack, stack_id, str(loaded.path))


def cross_source_rows(cards: dict) -> list[dict]:
    """One row per model and other source (``metrics.cross_source`` in the cards, from
    ``scripts/score_shift.py``): sensitivity, specificity and abstentions, each with its split."""
    rows = []
    for name, card in cards.items():
        for source, block in card.get("metrics", {}).get("cross_source", {}).items():
            if source == "summary":
                continue
            pct = lambda v: "–" if v is None else f"{v:.0%}"  # noqa: E731
            rows.append({"model": name, "source": source, "sensitivity": pct(block["sensitivity"]),
                         "specificity": pct(block["specificity"]), "abstained": pct(block["abstained"]),
                         "wrong calls abstained or warned": pct(block["wrong_abstained_or_warned"]),
                         "images": block["n"], "split": block["split"]})
    return rows
