"""Mask overlay: the LGG tumour mask over the slice, measured, corrected by hand, compared, exported."""

from __future__ import annotations

import numpy as np
import streamlit as st

from mri_core import export, inference
from mri_core.annotate import BRUSH, ERASER, base_rgb, mask_from_canvas, mask_overlay, mask_to_canvas_object, outlines
from mri_core.data import mask_from_bytes, read_mask
from mri_core.io import UnreadableImage, join_slices
from mri_core.measure import measure, volume_ml
from mri_core.metrics import dice
from views.common import (
    DISCLAIMER, Input, choose_inputs, model_picker, patient_details, segment_volume, show_errors, show_notes, slice_picker,
    stack_key,
)

CANVAS = 384  # on-screen canvas side; masks are resized back to the slice with nearest neighbour

st.title("Tumour mask")
st.caption(DISCLAIMER)

loaded = model_picker("lgg", key="mask_model")
inputs = show_errors(choose_inputs("lgg", key="mask", multiple=True))
if not inputs:
    st.stop()
if len(inputs) > 1 and all(i.stack.n_slices == 1 for i in inputs) and st.toggle(
        "Treat the uploaded slices as one volume", key="mask_join",
        help="For one scan exported slice by slice (e.g. patient_1.jpg … patient_40.jpg): the slices are "
             "ordered by file name, only the main connected lesion is kept, and the volume can be exported."):
    try:
        joined = join_slices([(i.label, i.stack) for i in inputs])
        inputs = [Input(f"{len(inputs)} slices as one volume", joined)]
    except UnreadableImage as exc:
        st.error(f"The slices cannot be joined: {exc}")
if len(inputs) > 1:
    pick = st.selectbox("File", range(len(inputs)), format_func=lambda i: inputs[i].label, key="mask_file")
    item = inputs[pick]
else:
    item = inputs[0]
stack = item.stack
show_notes(stack)
patient_details(stack, key="mask_patient")


stack_id = stack_key(item.label, stack)
model_masks, tumour_probs = segment_volume(loaded, stack, stack_id)
index = slice_picker(stack, key=f"mask_slice_{stack_id}")
image = stack.slice(index)
for w in inference.input_warnings(image, loaded, None, stack.modality):
    st.warning(w)

# Hand corrections are kept per file, slice and model, so moving the slider loses nothing.
edits: dict = st.session_state.setdefault("mask_edits", {})
edit_key = (stack_id, loaded.name, index)

c1, c2, c3, c4 = st.columns(4)
opacity = c1.slider("Opacity", 0.0, 1.0, 0.45, 0.05, key="mask_opacity")
style = c2.radio("Style", ["filled", "contour"], horizontal=True, key="mask_style")
colour = c3.color_picker("Colour", "#ff3333", key="mask_colour")
editing = c4.toggle("Correct by hand", key="mask_edit")

mask = edits.get(edit_key, model_masks[index])
if editing:
    from streamlit_drawable_canvas import st_canvas

    t1, t2, t3 = st.columns(3)
    tool = t1.radio("Tool", ["brush", "eraser"], horizontal=True, key="mask_tool")
    width = t2.slider("Brush size", 2, 40, 12, key="mask_brush")
    if t3.button("Reset to the model's mask", key="mask_reset"):
        edits.pop(edit_key, None)
        mask = model_masks[index]
    from PIL import Image

    # A new canvas per file and slice; its key is kept so tests can feed it a drawing.
    canvas_key = st.session_state["mask_canvas_key"] = f"mask_canvas_{abs(hash(stack_id))}_{index}"
    result = st_canvas(
        stroke_width=width,
        stroke_color=BRUSH if tool == "brush" else ERASER,
        background_image=Image.fromarray(base_rgb(image)),
        initial_drawing={"objects": [mask_to_canvas_object(mask, CANVAS, CANVAS)]},
        height=CANVAS,
        width=CANVAS,
        drawing_mode="freedraw",
        return_image_data=True,
        key=canvas_key,
    )
    st.caption("Green: the mask. The eraser paints red; red pixels are removed from the mask.")
    drawn = result.image_data
    if drawn is not None:  # before the first stroke the canvas returns nothing: keep the model's mask
        mask = mask_from_canvas(drawn, image.shape[:2])
        edits[edit_key] = mask

left, right = st.columns(2)
left.image(np.clip(image, 0, 1), caption=f"Slice {index}", width="stretch")
right.image(mask_overlay(image, mask, colour, opacity, contour_only=style == "contour"),
            caption="Edited mask" if edit_key in edits else "Model's mask", width="stretch")

m = measure(mask, stack.spacing_mm)
st.subheader("Measurements")
cols = st.columns(5)
cols[0].metric("Tumour probability", f"{tumour_probs[index]:.0%}")
cols[1].metric("Area", f"{m.area_mm2:.1f} mm²" if m.area_mm2 is not None else f"{m.area_px} px",
               help=None if stack.spacing_mm else "Pixel spacing unknown (PNG/JPEG): sizes are in pixels.")
unit = "mm" if m.longest_diameter_mm is not None else "px"
longest = m.longest_diameter_mm if unit == "mm" else m.longest_diameter_px
perp = m.perpendicular_diameter_mm if unit == "mm" else m.perpendicular_diameter_px
cols[2].metric("Longest diameter", f"{longest:.1f} {unit}")
cols[3].metric("Perpendicular", f"{perp:.1f} {unit}")
cols[4].metric("Lesions", m.n_lesions)
all_masks = np.stack([edits.get((stack_id, loaded.name, k), model_masks[k]) for k in range(stack.n_slices)])
vol = volume_ml(all_masks, stack.spacing_mm, stack.slice_thickness_mm) if stack.n_slices > 1 else None
if vol is not None:
    st.metric("Volume over the stack", f"{vol:.2f} ml")
if stack.n_slices > 1:
    st.caption("In a stack, only the main connected 3-D lesion (the most tumour probability in total) is kept: "
               "detections not connected to it are treated as false alarms (a lower-grade glioma is one lesion).")

st.subheader("Compare with a ground-truth mask")
truth = None
gt_upload = st.file_uploader("Ground-truth mask (PNG, same size as the slice)", key="mask_truth")
if gt_upload is not None:
    try:
        truth = mask_from_bytes(gt_upload.getvalue(), gt_upload.name)
        if truth.shape != mask.shape:
            st.error(f"The ground-truth mask is {truth.shape[1]}x{truth.shape[0]} px; the slice is "
                     f"{mask.shape[1]}x{mask.shape[0]} px.")
            truth = None
    except UnreadableImage as exc:
        st.error(f"**{gt_upload.name}**: {exc}")
elif item.mask_path:
    truth = read_mask(item.mask_path)
    st.caption("Using the bundled sample's ground-truth mask.")
if truth is not None:
    st.metric("Dice with the ground truth", f"{dice(mask, truth):.3f}")
    st.image(outlines(image, [(mask, colour), (truth, "#33ff66")], thickness=2),
             caption="Outlines: mask (chosen colour), ground truth (green)", width=CANVAS)

st.subheader("Download")
d1, d2, d3, d4 = st.columns(4)
d1.download_button("Mask (PNG)", export.mask_png(mask), "mask.png", "image/png", key="dl_png")
d2.download_button("Masks (NIfTI)", export.mask_nifti(all_masks, stack), "mask.nii.gz", "application/gzip", key="dl_nii")
if stack.format == "dicom" and stack.dicom_sources:
    try:
        seg = export.mask_dicom_seg(all_masks, stack, "MRI Insight " + loaded.name, "1")
        d3.download_button("DICOM SEG", seg, "mask_seg.dcm", "application/dicom", key="dl_seg")
    except ValueError as exc:
        d3.caption(f"DICOM SEG unavailable: {exc}")
report = export.report_text(m.as_dict(), loaded.name, stack.spacing_mm is not None, volume_ml=vol, slice_index=index)
d4.download_button("Report (text)", report.encode(), "report.txt", "text/plain", key="dl_report")
