"""Which model a page runs: the task and model pickers, the mask model chosen for an upload, and the
model cache (``st.cache_resource``: one object per process, shared by every session, never mutated)."""

from __future__ import annotations

import atexit
import logging
import threading

import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx

from mri_core import models
from mri_core.cards import Card
from mri_core.io import ImageStack
from mri_core.tasks import TASKS

logger = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)  # no spinner of its own: the warm-up thread below fills it unseen
def _load_model(name: str, models_dir: str) -> models.LoadedModel:
    return models.load(name)


_ready: set[tuple[str, str]] = set()  # (name, folder) already in the cache: no spinner for them


def get_model(name: str) -> models.LoadedModel:
    # The folder is part of the key so a different models/ (tests, MRI_MODELS_DIR) never hits a stale entry.
    key = (name, str(models.default_root()))
    if key in _ready:
        return _load_model(*key)
    with st.spinner("Loading model…"):
        loaded = _load_model(*key)
    _ready.add(key)
    return loaded


def warm_models_in_background() -> None:
    """Load the models a first upload needs (each task's default, and the one-sequence mask model)
    once per server process, in a thread started by the first session's first run: a clinician
    reading Home or choosing a file meanwhile does not wait, and the first result does not pay
    for loading a model (about 2 s each here)."""
    _warming(str(models.default_root()))


@st.cache_resource(show_spinner=False)
def _warming(models_dir: str) -> threading.Thread:
    names = [models.default_model(task) for task in TASKS if models.list_models(task)]
    if models.list_models("lgg"):
        names.append(models.segmenter_for(grey=True)[0])

    def load_all() -> None:
        for name in dict.fromkeys(names):
            try:
                _load_model(name, models_dir)
            except Exception:  # noqa: BLE001  a page that asks for it later says what is wrong
                logger.exception("warming model %s failed", name)

    thread = threading.Thread(target=load_all, name="warm-models", daemon=True)
    add_script_run_ctx(thread)  # the shared cache is reached from this thread as from a page
    thread.start()
    # TensorFlow aborts the process if the interpreter shuts down while the thread is still in it.
    atexit.register(thread.join, 60)
    return thread


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
