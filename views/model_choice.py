"""Which model a page runs: the task and model pickers, the mask model chosen for an upload, and the
model cache (``st.cache_resource``: one object per process, shared by every session, never mutated)."""

from __future__ import annotations

import streamlit as st

from mri_core import models
from mri_core.cards import Card
from mri_core.io import ImageStack
from mri_core.tasks import TASKS


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
