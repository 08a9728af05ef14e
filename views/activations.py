"""Activation viewer: feature maps of any convolutional layer, one channel enlarged, Grad-CAM there."""

from __future__ import annotations

import numpy as np
import streamlit as st

from mri_core import explain, inference
from mri_core.display import display_name
from views.model_choice import model_picker, task_picker
from views.navigation import page_header
from views.reading import slice_picker
from views.scan_input import choose_inputs, show_errors
from views.session_case import open_case

page_header(__file__)

task = task_picker("act_task")
loaded = model_picker(task, key=f"act_model_{task}")
inputs = show_errors(choose_inputs(task, key=f"act_{task}", multiple=False, upload_key="act"))
if not inputs:
    st.stop()
case = open_case(inputs[0])
index = slice_picker(case, key="act_slice")


@st.cache_data(show_spinner="Explaining…", max_entries=16)
def _analysis(_loaded, _image, content: str, model_path: str, index: int, modality: str, layer: str,
              target: int | None) -> inference.SliceAnalysis:
    """The slice's feature maps and Grad-CAM at ``layer``, per (content hash, model, slice, layer, class)."""
    return inference.analyse_slice(_loaded, _image, modality, target=target, layer=layer, features=True)


def analysis(layer: str, target: int | None = None) -> inference.SliceAnalysis:
    return _analysis(loaded, case.stack.slice(index), case.key, str(loaded.path), index, case.stack.modality, layer, target)


layers = explain.spatial_layers(loaded.keras_model)
convs = set(explain.conv_layers(loaded.keras_model))
only_convs = st.toggle("Convolution layers only", value=True, key="act_only_convs")
choices = [n for n in layers if n in convs] if only_convs else layers
default = loaded.card.gradcam_layer
default_index = choices.index(default) if default in choices else len(choices) - 1
layer = st.selectbox("Layer", choices, index=default_index, key=f"act_layer_{loaded.name}_{only_convs}")

result = analysis(layer)
maps = result.features
h, w, c = maps.shape
st.caption(f"`{layer}`: {c} channels of {w}x{h}")
left, right = st.columns([1.4, 1])
left.image(explain.feature_grid(maps, max_channels=64), caption=f"Feature maps (first {min(c, 64)} of {c})",
           width="stretch", clamp=True)
if c > 1:
    channel = right.slider("Channel", 0, c - 1, int(np.argmax(maps.mean(axis=(0, 1)))), key=f"act_channel_{loaded.name}_{layer}")
else:  # one channel (e.g. the segmenter's `mask` output): nothing to choose, and a 0..0 slider is refused
    channel = 0
    right.caption("This layer has a single channel.")
one = maps[..., channel]
lo, hi = float(one.min()), float(one.max())
right.image(explain.colormap((one - lo) / (hi - lo) if hi > lo else np.zeros_like(one)),
            caption=f"Channel {channel} (min {lo:.2f}, max {hi:.2f})", width="stretch")

st.subheader("Grad-CAM at this layer")
pred = result.prediction
if pred is not None:  # a classifier: the class to explain, the top one first
    target = st.selectbox("Explain the class", range(len(loaded.class_names)), index=pred.index,
                          format_func=lambda i: f"{display_name(loaded.class_names[i])} ({pred.probs[i]:.0%})", key="act_target")
    if target != pred.index:
        result = analysis(layer, target)
c1, c2 = st.columns(2)
c1.image(np.clip(result.input_image, 0, 1), caption="Model input (after crop and resize)", width="stretch")
c2.image(result.gradcam, caption=f"Grad-CAM at {layer}", width="stretch")
