"""MRI Insight: the entry file only routes (st.navigation over ``views.navigation.PAGES``)."""

import streamlit as st
from streamlit.runtime.scriptrunner import script_runner

from views.auth import gate
from views.model_choice import warm_models_in_background
from views.navigation import keep_choices, navigation


def _keep_shared_models() -> None:
    """Streamlit calls ``keras.backend.clear_session()`` after every script run (its
    ``_clean_problem_modules``, meant for scripts that build a model on each run). Ours are built
    once and shared in ``st.cache_resource``: the clear cost a full ``gc.collect`` (0.33 s of a
    0.39 s rerun) and emptied TensorFlow's kernel cache, so the next classify and Grad-CAM took
    0.57 s each instead of ~0.01 s (cProfile around the predict page, see README)."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")  # the other half of Streamlit's clean-up, kept
    if plt is not None:
        plt.close("all")


script_runner._clean_problem_modules = _keep_shared_models

st.set_page_config(page_title="MRI Insight", page_icon="🧠", layout="wide")

gate()  # sign-in (or single-user mode) before any page: views/auth.py
warm_models_in_background()
keep_choices()
navigation().run()
