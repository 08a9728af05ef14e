"""Mask overlay: the LGG tumour mask over the slice, measured, corrected by hand, compared, exported.

Everything here reads one case (``views.session_case.open_case``): the scan, the slice, the model's
masks and the hand edits. What is shown, measured, exported and reported is ``case.mask``.
"""

from __future__ import annotations

import streamlit as st

from mri_core import export, inference
from mri_core.annotate import (
    base_rgb, canvas_paints, eraser_colour, mask_overlay, mask_to_canvas_object, orientation_marks, outlines, reading_view,
    window_level,
)
from mri_core.case import stack_key
from mri_core.io import UnreadableImage, join_slices
from mri_core.io.folders import mask_from_bytes, read_mask
from mri_core.measure import volume_ml
from mri_core.metrics import dice
from mri_core.report import CaseReport
from views import pacs_source  # PACS (issue 29)
from views import store_session
from views.model_choice import segmenter_picker
from views.navigation import page_header
from views.reading import patient_details, pdf_download, reading_controls, show_notes, slice_picker
from views.scan_input import choose_inputs, file_picker, Input, show_errors
from views.segmenting import PROBABILITY_HELP, case_segmentation, mask_abstention, mask_caption, probability_text
from views.session_case import open_case

CANVAS = 384  # on-screen canvas side; masks are resized back to the slice with nearest neighbour

page_header(__file__)

inputs = pacs_source.choose(key="mask")  # PACS (issue 29): None unless "From PACS" is chosen
inputs = show_errors(choose_inputs("lgg", key="mask", multiple=True) if inputs is None else inputs)
if not inputs:
    st.stop()
if len(inputs) > 1 and all(i.stack.n_slices == 1 for i in inputs) and st.toggle(
        "Treat the uploaded slices as one volume", key="mask_join",
        help="For one scan exported slice by slice (e.g. patient_1.jpg … patient_40.jpg): the slices are "
             "ordered by file name, only the main connected lesion is kept, and the volume can be exported."):
    try:
        joined = join_slices([(i.label, i.stack) for i in inputs])
        inputs = [Input(f"{len(inputs)} slices as one volume", joined, key=stack_key(joined))]
    except UnreadableImage as exc:
        st.error(f"The slices cannot be joined: {exc}")
case = open_case(file_picker(inputs, "File", key="mask_file") if len(inputs) > 1 else inputs[0])
stack = case.stack
loaded = segmenter_picker([stack], key="mask_model")
if case.sample:
    st.caption(f"Bundled sample **{case.name}** from our validation split, not a patient's scan: drop a file above to read yours.")
show_notes(stack)
patient_details(stack, key="mask_patient")

case_segmentation(case, loaded)
model = loaded.name
index = slice_picker(case, key="mask_slice")
image = stack.slice(index)
mask_abstention(case.abstention(model, index), ": read the slice yourself, or draw the mask by hand")  # first
warnings = inference.input_warnings(image, loaded, None, stack.modality)
for w in warnings:
    st.warning(w)

c1, c2, c3, c4 = st.columns(4)
opacity = c1.slider("Opacity", 0.0, 1.0, 0.45, 0.05, key="mask_opacity")
style = c2.radio("Style", ["filled", "contour"], horizontal=True, key="mask_style")
colour = c3.color_picker("Colour", "#ff3333", key="mask_colour")
editing = c4.toggle("Correct by hand", key="mask_edit")
reading = reading_controls(stack, key="mask_read")
shown = window_level(image, reading.level, reading.width)  # the slice as windowed for reading

if editing:
    from PIL import Image
    from streamlit_drawable_canvas import st_canvas

    t1, t2, t3, t4 = st.columns(4)
    tool = t1.radio("Tool", ["brush", "eraser"], horizontal=True, key="mask_tool")
    width = t2.slider("Brush size", 2, 40, 12, key="mask_brush")
    # The canvas starts from the stored mask and keeps its key (and its strokes) until an undo,
    # a reset or a new colour; each new drawing it sends becomes one stored edit, once.
    canvas_key, base = case.canvas(model, index, colour, opacity, mounted=lambda key: key in st.session_state)
    brush, eraser = canvas_paints(colour, opacity)
    result = st_canvas(
        stroke_width=width,
        stroke_color=brush if tool == "brush" else eraser,
        background_image=Image.fromarray(base_rgb(shown)),
        initial_drawing={"objects": [mask_to_canvas_object(base, CANVAS, CANVAS, colour, opacity)]},
        height=CANVAS,
        width=CANVAS,
        drawing_mode="freedraw",
        return_image_data=True,
        key=canvas_key,
    )
    case.apply_canvas(model, index, result.image_data)
    # Drawn after the canvas's result is taken (so they know of the last stroke); their callbacks
    # run before the next run, so the canvas there starts again from the stored mask.
    t3.button("Undo", key="mask_undo", disabled=not case.can_undo(model, index), help="Step back one edit on this slice.",
              on_click=case.undo, args=(model, index))
    t4.button("Reset to the model's mask", key="mask_reset", disabled=not case.edited(model, index),
              on_click=case.reset, args=(model, index))
    st.caption(f"The mask is painted in your colour at your opacity; the eraser paints {eraser_colour(colour)[0]}, and what it "
               "covers leaves the mask. Undo and Reset act on this slice; the canvas's own toolbar only on strokes since "
               "the last Undo or Reset.")

store_session.save(case)  # issue 28: the case and its edits in the database (kept in the session while it is away)
seg = case.slice_mask(model, index)  # the one mask shown, measured, exported and reported
mask, edited, m = seg.mask, seg.edited, seg.measurements
left, right = st.columns(2)
overlay = mask_overlay(shown, mask, colour, opacity, contour_only=style == "contour")
marks = orientation_marks(stack)
view = dict(zoom=reading.zoom, centre=reading.centre, spacing_mm=stack.spacing_mm, marks=marks)
left.image(reading_view(shown, **view), caption=f"Slice {index + 1} of {stack.n_slices}", width="stretch")
right.image(reading_view(overlay, **view), caption=mask_caption(seg), width="stretch")

st.subheader("Measurements")
cols = st.columns(3)
cols[0].metric("Tumour probability", probability_text(seg), help=PROBABILITY_HELP)
cols[1].metric("Area", f"{m.area_mm2:.0f} mm²" if m.area_mm2 is not None else f"{m.area_px} px",
               help=f"{m.area_px} px" + ("" if stack.spacing_mm else ". Pixel spacing unknown (the file does not give a usable one): sizes are in pixels."))
cols[2].metric("Lesions", m.n_lesions)
unit = "mm" if m.longest_diameter_mm is not None else "px"
longest = m.longest_diameter_mm if unit == "mm" else m.longest_diameter_px
perp = m.perpendicular_diameter_mm if unit == "mm" else m.perpendicular_diameter_px
cols = st.columns(3)
cols[0].metric("Longest diameter, largest lesion", f"{longest:.1f} {unit}")
cols[1].metric("Perpendicular, largest lesion", f"{perp:.1f} {unit}")
all_masks = case.masks(model)
vol = volume_ml(all_masks, stack.spacing_mm, stack.slice_thickness_mm) if stack.n_slices > 1 else None
if vol is not None:
    cols[2].metric("Volume over the stack", f"{vol:.2f} ml")
if stack.n_slices > 1:
    st.caption("In a stack, only the main connected 3-D lesion (the most tumour probability in total) is kept: "
               "detections not connected to it are treated as false alarms (a lower-grade glioma is one lesion).")

st.subheader("Compare with a ground-truth mask")
gt_upload = st.file_uploader("Ground-truth mask (PNG, same size as the slice): compared with the slice shown when it is given",
                             key="mask_truth")
if gt_upload is not None:
    if st.session_state.get("mask_truth_seen") != (case.key, gt_upload.file_id):
        try:
            truth_in = mask_from_bytes(gt_upload.getvalue(), gt_upload.name)
            if truth_in.shape != mask.shape:
                st.error(f"The ground-truth mask is {truth_in.shape[1]}x{truth_in.shape[0]} px; the slice is "
                         f"{mask.shape[1]}x{mask.shape[0]} px.")
            else:
                case.set_truth(index, truth_in)
                st.session_state["mask_truth_seen"] = (case.key, gt_upload.file_id)
        except UnreadableImage as exc:
            st.error(f"**{gt_upload.name}**: {exc}")
elif case.truth_mask_path and not case.truth_masks:
    case.set_truth(0, read_mask(case.truth_mask_path))
if case.truth_mask_path and gt_upload is None:
    st.caption("Using the bundled sample's ground-truth mask.")
truth = case.truth_masks.get(index)
dice_value = float(dice(mask, truth)) if truth is not None else None
if truth is not None:
    st.metric("Dice with the ground truth", f"{dice_value:.3f}")
    st.image(outlines(image, [(mask, colour), (truth, "#33ff66")], thickness=2),
             caption="Outlines: mask (chosen colour), ground truth (green)", width=CANVAS)
elif case.truth_masks:
    (k_truth,) = case.truth_masks
    st.info(f"The ground truth given is one slice, compared with slice {k_truth + 1}; this is slice {index + 1}, "
            "so there is no Dice here. Move to that slice, or give this slice's ground truth.")

st.subheader("Download")
report = export.report_text(m.as_dict(), model, stack.spacing_mm is not None, volume_ml=vol, slice_index=index,
                            file_name=case.name, date=case.opened, edited=edited, dice=dice_value, n_slices=stack.n_slices,
                            abstention_reason=seg.reason)
d1, d2, d3, d4, d5 = st.columns(5)
d1.download_button("Mask (PNG)", export.mask_png(mask), "mask.png", "image/png", key="dl_png",
                   on_click=store_session.exported, args=(case, "png", model), kwargs={"edited": edited})
# Made on each run, not on request: Streamlit 1.67 drops a download made on request (a callable) when
# its click also runs a callback (the audit row of the export), since the rerun replaces it (Chromium).
d2.download_button("Masks (NIfTI)", export.mask_nifti(case.masks(model), stack), "mask.nii.gz", "application/gzip",
                   key="dl_nii", on_click=store_session.exported, args=(case, "nifti", model),
                   kwargs={"edited": case.edited(model)})
if stack.format == "dicom":
    unavailable = export.dicom_seg_unavailable(stack)
    try:
        seg_file = None if unavailable else export.mask_dicom_seg(
            case.masks(model), stack, "MRI Insight " + model, loaded.version, origin=case.mask_origin(model))
    except ValueError as exc:
        unavailable = str(exc)
    if unavailable:
        d3.caption(f"DICOM SEG unavailable: {unavailable}")
    else:
        d3.download_button("DICOM SEG", seg_file,
            "mask_seg.dcm", "application/dicom", key="dl_seg",
            on_click=store_session.exported, args=(case, "dicom-seg", model), kwargs={"edited": case.edited(model)},
            help="Says who drew the mask: the model (AUTOMATIC), the model then a person (SEMIAUTOMATIC) or a person "
                 "alone (MANUAL).")
d4.download_button("Report (text)", report.encode(), "report.txt", "text/plain", key="dl_report",
                   on_click=store_session.exported, args=(case, "text", model, "report"), kwargs={"edited": edited})
case_report = CaseReport(
    file_name=case.name, date=case.opened, model_name=model, model_card=loaded.card, image=overlay,
    image_caption=f"Slice {index + 1} of {stack.n_slices}, " + ("mask edited by hand" if edited else "the model's mask"),
    slice_index=index, n_slices=stack.n_slices, measurements=m.as_dict(), spacing_known=stack.spacing_mm is not None,
    volume_ml=vol, dice=dice_value, edited=edited, abstained=bool(seg.reason), abstention_reason=seg.reason,
    warnings=warnings)
pdf_download(d5, case_report, stack, key="dl_pdf")
pacs_source.send_button(case, loaded, index, seg, vol, case_report)  # PACS (issue 29): only for a case from the PACS
with st.expander("Report"):
    st.code(report, language=None)
