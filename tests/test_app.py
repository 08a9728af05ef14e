"""AppTest for every page: each control driven, uploads of every format, no exception anywhere."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from factories import dicom_bytes, nifti_bytes, phantom, png_bytes

APP = str(Path(__file__).resolve().parent.parent / "app.py")
SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    if page != "views/home.py":
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """Everything the page shows as text, for assertions on content."""
    parts = []
    for kind in ("markdown", "caption", "title", "subheader", "error", "warning", "info", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    for t in at.table:
        parts.append(t.value.to_string())
    for d in at.dataframe:
        parts.append(d.value.to_string())
    return "\n".join(parts)


def gray_png(seed=0) -> bytes:
    img = np.zeros((120, 120), np.float32)
    img[12:108, 12:108] = phantom(seed=seed)
    return png_bytes((img * 255).astype(np.uint8))


@pytest.fixture(autouse=True)
def _models(use_tiny_models):
    yield


def test_home_lists_every_task_and_disclaimer():
    at = open_page("views/home.py")
    text = texts(at)
    assert "does not replace a radiologist" in text
    assert len(at.dataframe) == 3
    assert "brain_tumor_mri_sepnet" in at.dataframe[0].value.to_string()


# --------------------------------------------------------------------------- upload & predict


@pytest.mark.parametrize("task", ["brain_tumor", "alzheimer", "lgg"])
def test_predict_on_a_bundled_sample_without_upload(task):
    at = open_page("views/predict.py")
    at.radio(key="predict_task").set_value(task).run()
    assert not at.exception
    assert not at.error
    labels = [m.label for m in at.metric]
    if task == "lgg":
        assert "Tumour probability" in labels and "Area" in labels
    else:
        assert {"Prediction", "Calibrated confidence", "Uncertainty (TTA std)"} <= set(labels)
        assert at.get("plotly_chart")  # probability bar
        assert len(at.get("image")) >= 1  # slice and Grad-CAM images


def test_predict_every_sample_choice():
    at = open_page("views/predict.py")
    box = at.selectbox(key="predict_brain_tumor_sample")
    for i in range(len(box.options)):
        at.selectbox(key="predict_brain_tumor_sample").set_value(i).run()
        assert not at.exception and "Known answer" in texts(at)


def test_predict_model_choice():
    at = open_page("views/predict.py")
    sel = at.selectbox(key="predict_model_brain_tumor")
    assert sel.value == "brain_tumor_mri_sepnet"
    sel.set_value("brain_tumor_mri_sepnet").run()
    assert not at.exception


def test_predict_lgg_volume_agrees_with_the_mask_page(tiny_models):
    from mri_core import inference, models
    from mri_core.io import read_image

    data = nifti_bytes(np.stack([phantom(seed=i) for i in range(5)], axis=-1), gz=True)
    stack = read_image(data, "volume.nii.gz")
    loaded = models.load(models.default_model("lgg", tiny_models), tiny_models)
    expected = inference.segment(loaded, list(stack.slices), volume=True)
    for page, key, task_key in (("views/predict.py", "predict_lgg_upload", "predict_task"), ("views/mask.py", "mask_upload", None)):
        at = open_page(page)
        if task_key:
            at.radio(key=task_key).set_value("lgg").run()
        at.file_uploader(key=key).upload("volume.nii.gz", data).run()
        assert not at.exception and not at.error
        k = stack.n_slices // 2  # the slider starts in the middle
        shown = next(m.value for m in at.metric if m.label == "Tumour probability")
        assert shown == f"{expected[k].tumor_probability:.0%}", page


@pytest.mark.parametrize(
    "name,make",
    [
        ("slice.png", lambda: gray_png()),
        ("scan.dcm", lambda: dicom_bytes((phantom() * 1000).astype(np.uint16))),
        ("volume.nii.gz", lambda: nifti_bytes(np.stack([phantom(seed=i) for i in range(3)], axis=-1), gz=True)),
    ],
)
def test_predict_upload_formats(name, make):
    at = open_page("views/predict.py")
    at.file_uploader(key="predict_brain_tumor_upload").upload(name, make()).run()
    assert not at.exception
    assert "Prediction" in [m.label for m in at.metric]
    if name.endswith(".nii.gz"):
        slider = at.slider(key=f"predict_slice_{name}")
        slider.set_value(2).run()
        assert not at.exception


def test_predict_many_files_gives_table_and_csv():
    at = open_page("views/predict.py")
    up = at.file_uploader(key="predict_brain_tumor_upload")
    up.upload("a.png", gray_png(1)).upload("b.png", gray_png(2)).upload("broken.png", b"\x89PNG\r\n\x1a\nxx").run()
    assert not at.exception
    assert any("broken.png" in str(e.value) for e in at.error)
    table = at.dataframe[0].value
    assert list(table["file"]) == ["a.png", "b.png"]
    assert {"prediction", "confidence", "uncertainty", "p_glioma"} <= set(table.columns)
    assert at.get("download_button")
    at.selectbox(key="predict_detail").set_value(1).run()
    assert not at.exception


def test_predict_lgg_many_slices_table():
    at = open_page("views/predict.py")
    at.radio(key="predict_task").set_value("lgg").run()
    rgb = lambda s: np.dstack([(phantom(seed=s) * 255).astype(np.uint8)] * 3)
    up = at.file_uploader(key="predict_lgg_upload")
    up.upload("x.png", png_bytes(rgb(1))).upload("y.png", png_bytes(rgb(2))).run()
    assert not at.exception
    assert {"tumor_probability", "area_px"} <= set(at.dataframe[0].value.columns)


def test_patient_details_hidden_until_asked():
    at = open_page("views/predict.py")
    at.file_uploader(key="predict_brain_tumor_upload").upload("p.dcm", dicom_bytes((phantom() * 900).astype(np.uint16))).run()
    assert "Doe^Jane" not in texts(at)
    at.toggle(key="predict_patient").set_value(True).run()
    assert "Doe^Jane" in texts(at)


# --------------------------------------------------------------------------- mask


def canvas_state(mask: np.ndarray) -> dict:
    """What the canvas component sends back after a stroke: its drawing as a PNG data URL."""
    rgba = np.zeros(mask.shape + (4,), np.uint8)
    rgba[mask] = (0, 255, 0, 200)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"drawing": {"raw": {"objects": []}, "data": url}, "backgroundFit": None}


def test_mask_page_controls_and_downloads():
    at = open_page("views/mask.py")
    assert not at.error
    labels = [m.label for m in at.metric]
    assert {"Area", "Longest diameter", "Perpendicular", "Lesions", "Dice with the ground truth"} <= set(labels)
    at.slider(key="mask_opacity").set_value(0.8).run()
    at.radio(key="mask_style").set_value("contour").run()
    at.color_picker(key="mask_colour").set_value("#00aaff").run()
    assert not at.exception
    names = [b.proto.label for b in at.get("download_button")]
    assert {"Mask (PNG)", "Masks (NIfTI)", "Report (text)"} <= set(names)


def test_mask_hand_correction_updates_measurements():
    at = open_page("views/mask.py")
    at.toggle(key="mask_edit").set_value(True).run()
    assert not at.exception
    at.radio(key="mask_tool").set_value("eraser").run()
    at.slider(key="mask_brush").set_value(20).run()
    # simulate a drawing: a 40 x 40 square on the 384 px canvas
    drawn = np.zeros((384, 384), bool)
    drawn[100:140, 100:140] = True
    canvas_key = at.session_state["mask_canvas_key"]
    at.session_state[canvas_key] = canvas_state(drawn)
    at.run()
    assert not at.exception
    area = next(m for m in at.metric if m.label == "Area").value
    # 40 canvas px on 384 = 26.7 slice px on a 256 px slice: about 711 px
    assert area.endswith("px") and 600 <= int(area.split()[0]) <= 800
    at.button(key="mask_reset").click().run()
    assert not at.exception


def test_mask_ground_truth_upload_and_wrong_size():
    at = open_page("views/mask.py")
    truth = np.zeros((256, 256), np.uint8)
    truth[100:150, 100:150] = 255
    at.file_uploader(key="mask_truth").upload("gt.png", png_bytes(truth)).run()
    assert not at.exception and "Dice with the ground truth" in [m.label for m in at.metric]
    at.file_uploader(key="mask_truth").upload("small.png", png_bytes(truth[:100, :100])).run()
    assert any("ground-truth mask is 100x100" in str(e.value) for e in at.error)


def test_mask_dicom_series_gives_volume_and_seg():
    at = open_page("views/mask.py")
    uid = "1.2.826.0.1.3680043.8.498.77"
    study = "1.2.826.0.1.3680043.8.498.78"
    frame = "1.2.826.0.1.3680043.8.498.79"
    up = at.file_uploader(key="mask_upload")
    for z in range(3):
        rgb_like = (phantom(seed=z) * 1000).astype(np.uint16)
        up.upload(f"s{z}.dcm", dicom_bytes(rgb_like, position=(0, 0, 5.0 * z), series_uid=uid, instance=z + 1,
                                           study_uid=study, frame_of_reference_uid=frame))
    up.run()
    assert not at.exception
    assert any("series of 3 files" in str(c.value) for c in at.caption)
    names = [b.proto.label for b in at.get("download_button")]
    assert "DICOM SEG" in names or any("DICOM SEG unavailable" in str(c.value) for c in at.caption)


def _mask_page_with_slices(files: dict[str, bytes]) -> AppTest:
    at = open_page("views/mask.py")
    up = at.file_uploader(key="mask_upload")
    for name, data in files.items():
        up.upload(name, data)
    up.run()
    assert not at.exception
    return at


def test_mask_page_warns_about_a_slice_too_dark_for_the_model():
    rgb = np.dstack([phantom(seed=c) for c in range(3)])
    at = _mask_page_with_slices({"dark.png": png_bytes((rgb * 0.04 * 255).astype(np.uint8))})
    assert any("much darker than the training slices" in str(w.value) for w in at.warning)
    at = _mask_page_with_slices({"usual.png": png_bytes((rgb * 255).astype(np.uint8))})
    assert not any("darker" in str(w.value) for w in at.warning)


def test_mask_joins_uploaded_slices_into_a_volume():
    slices = {f"patient_{z}.png": png_bytes((phantom(seed=z) * 255).astype(np.uint8)) for z in (10, 2, 1)}
    at = _mask_page_with_slices(slices)  # uploaded out of order
    assert at.selectbox(key="mask_file")  # three files, one at a time
    at.toggle(key="mask_join").set_value(True).run()
    assert not at.exception and not at.error
    shown = texts(at)
    assert "3 files joined into one volume, ordered by file name (patient_1.png … patient_10.png)" in shown
    assert "only the main connected 3-D lesion" in shown
    assert [sl.max for sl in at.slider if sl.label == "Slice"] == [2]
    assert "Masks (NIfTI)" in [b.proto.label for b in at.get("download_button")]


def test_mask_refuses_to_join_slices_of_different_sizes():
    at = _mask_page_with_slices({"a_1.png": png_bytes((phantom() * 255).astype(np.uint8)),
                                 "a_2.png": png_bytes((phantom(64, 80) * 255).astype(np.uint8))})
    at.toggle(key="mask_join").set_value(True).run()
    assert not at.exception
    assert any("cannot be joined" in str(e.value) for e in at.error)
    assert at.selectbox(key="mask_file")  # the files stay usable one by one
    assert [m.label for m in at.metric if m.label == "Area"]


# --------------------------------------------------------------------------- compare


@pytest.mark.parametrize("task", ["brain_tumor", "alzheimer", "lgg"])
def test_compare_on_samples(task):
    at = open_page("views/compare.py")
    at.radio(key="cmp_task").set_value(task).run()
    assert not at.exception and not at.error
    assert at.dataframe  # the card table
    assert at.get("plotly_chart")


def test_compare_on_a_folder(synthetic_data):
    at = open_page("views/compare.py")
    at.radio(key="cmp_source").set_value("a folder on this server").run()
    at.text_input(key="cmp_folder").input("/no/such/folder").run()
    assert any("not a folder" in str(e.value) for e in at.error)
    at.text_input(key="cmp_folder").input(str(synthetic_data["brain_tumor"])).run()
    assert not at.exception and not at.error
    assert "24 images" in texts(at)
    at.multiselect(key="cmp_models").set_value([]).run()
    assert not at.exception


# --------------------------------------------------------------------------- activations


def test_activation_viewer_every_control():
    at = open_page("views/activations.py")
    assert not at.error
    layer = at.selectbox(key="act_layer_brain_tumor_mri_sepnet_True")
    for name in (layer.options[0], layer.options[-1]):
        at.selectbox(key="act_layer_brain_tumor_mri_sepnet_True").set_value(name).run()
        assert not at.exception
    at.selectbox(key="act_target").set_value(2).run()
    at.toggle(key="act_only_convs").set_value(False).run()
    assert not at.exception
    sliders = [s for s in at.slider if str(s.key).startswith("act_channel_")]
    sliders[0].set_value(0).run()
    assert not at.exception
    at.radio(key="act_task").set_value("lgg").run()
    assert not at.exception and len(at.get("image")) >= 3


def test_activation_viewer_upload():
    at = open_page("views/activations.py")
    at.file_uploader(key="act_brain_tumor_upload").upload("x.png", gray_png(3)).run()
    assert not at.exception and not at.error
