"""A segmented case as the pages show it: the whole scan segmented once per model, the abstention box,
and the mask's caption, presence and probability wording."""

from __future__ import annotations

import numpy as np
import streamlit as st

from mri_core import inference, models
from mri_core.case import Case
from mri_core.display import percent
from mri_core.io import ImageStack


PROBABILITY_HELP = ("The model's, for the slice as it was segmented (hand edits do not change it); none is shown where "
                    "the model cannot judge the slice.")


def mask_caption(seg) -> str:
    """The title of a slice's mask (``case.SliceMask``): whose it is, and a reference only where the
    model cannot judge the slice."""
    if seg.edited:
        return "Mask edited by hand" + (" (the model cannot judge this slice)" if seg.reason else "")
    return "The model's mask, for reference only: the model cannot judge this slice" if seg.reason else "The model's mask"


def presence_text(seg) -> str:
    return {None: "no call", True: "yes", False: "no"}[seg.present]


def probability_text(seg) -> str:
    """A slice's tumour probability as the pages show it: none where the model cannot judge the slice,
    and never rounded up to a certainty (0.998 is "99.8 %", not "100 %")."""
    return "no call" if seg.reason else percent(seg.tumour_probability)


def mask_abstention(reason: str, advice: str = "") -> None:
    """The box that comes first where the mask model cannot judge the slice (``SliceMask.reason``)."""
    if reason:
        st.error(f"The model cannot judge this slice. {reason} Its mask below is for reference only{advice}.", icon="🚫")


@st.cache_data(show_spinner="Segmenting…", max_entries=16)
def _segment_volume(_loaded: models.LoadedModel, _stack: ImageStack, content: str, model_path: str):
    preds = inference.segment(_loaded, [_stack.slice(k) for k in range(_stack.n_slices)], volume=True,
                              modality=_stack.modality)
    return np.stack([p.mask for p in preds]), np.asarray([p.tumour_probability for p in preds]), tuple(p.reason for p in preds)


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
