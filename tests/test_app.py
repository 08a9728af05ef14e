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


def mask_model(at: AppTest) -> str:
    """The mask page's model: grey and colour uploads keep separate choices (views.model_choice.segmenter_picker)."""
    return next(s.value for s in at.selectbox if str(s.key).startswith("mask_model"))


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
    labels = [m.label for m in at.metric]
    errors = [e.value for e in at.error]
    if task == "lgg":
        assert not errors
        assert "Tumour probability" in labels and "Area" in labels
    elif errors:  # the tiny model, trained on synthetic phantoms, may find a real slice unlike its training images
        assert len(errors) == 1 and "cannot judge this image" in errors[0] and metric(at, "Result") == "No call"
        assert len(at.get("image")) >= 1
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


def test_predict_model_switch_changes_the_call(two_tumour_models, monkeypatch):
    from mri_core.models import ROOT_ENV

    monkeypatch.setenv(ROOT_ENV, str(two_tumour_models))
    at = open_page("views/predict.py")
    sel = at.selectbox(key="predict_model_brain_tumor")
    assert sel.value == "brain_tumor_mri_sepnet" and "brain_tumor_second" in sel.options

    def shown():
        return {m.label: m.value for m in at.metric}

    first = shown()
    assert "Prediction" in first
    sel.set_value("brain_tumor_second").run()
    assert not at.exception
    second = shown()
    # The second model's output layer is the first's negated: its top class is the first's last.
    assert second["Prediction"] != first["Prediction"]
    sel.set_value("brain_tumor_mri_sepnet").run()
    assert shown() == first  # switching back shows the first model's call again


def test_choices_survive_a_visit_to_another_page(two_tumour_models, monkeypatch):
    # Streamlit drops a widget's value when a run does not draw it; app.py keeps the user's choices.
    from mri_core.models import ROOT_ENV

    monkeypatch.setenv(ROOT_ENV, str(two_tumour_models))
    at = open_page("views/predict.py")
    at.selectbox(key="predict_model_brain_tumor").set_value("brain_tumor_second").run()
    at.radio(key="predict_task").set_value("alzheimer").run()
    at.switch_page("views/mask.py").run()
    at.slider(key="mask_opacity").set_value(0.8).run()
    at.radio(key="mask_style").set_value("contour").run()
    at.switch_page("views/compare.py").run()
    at.radio(key="cmp_task").set_value("lgg").run()
    at.switch_page("views/predict.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="predict_task").value == "alzheimer"
    at.radio(key="predict_task").set_value("brain_tumor").run()
    assert at.selectbox(key="predict_model_brain_tumor").value == "brain_tumor_second"
    at.switch_page("views/mask.py").run()
    assert at.slider(key="mask_opacity").value == 0.8 and at.radio(key="mask_style").value == "contour"
    at.switch_page("views/compare.py").run()
    assert not at.exception and at.radio(key="cmp_task").value == "lgg"


def test_predict_lgg_volume_agrees_with_the_mask_page(tiny_models):
    from mri_core import inference, models
    from mri_core.io import read_image

    data = nifti_bytes(np.stack([phantom(seed=i) for i in range(5)], axis=-1), gz=True)
    stack = read_image(data, "volume.nii.gz")
    # A grey volume: both pages choose the one-sequence model, as segmenter_for does.
    loaded = models.load(models.segmenter_for(grey=True, root=tiny_models)[0], tiny_models)
    assert loaded.name == "lgg_flair_unet_lite"
    expected = inference.segment(loaded, list(stack.slices), volume=True)
    for page, key, task_key in (("views/predict.py", "predict_upload", "predict_task"), ("views/mask.py", "mask_upload", None)):
        at = open_page(page)
        if task_key:
            at.radio(key=task_key).set_value("lgg").run()
        at.file_uploader(key=key).upload("volume.nii.gz", data).run()
        assert not at.exception and not at.error
        k = stack.n_slices // 2  # the slider starts in the middle
        shown = next(m.value for m in at.metric if m.label == "Tumour probability")
        assert shown == f"{expected[k].tumour_probability:.0%}", page


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
    at.file_uploader(key="predict_upload").upload(name, make()).run()
    assert not at.exception
    assert "Prediction" in [m.label for m in at.metric], [e.value for e in at.error]
    if name.endswith(".nii.gz"):
        slider = next(s for s in at.slider if s.label == "Slice")
        assert (slider.min, slider.max) == (1, 3)  # numbered from 1, as in the reports
        slider.set_value(3).run()
        assert not at.exception


def test_predict_many_files_gives_table_and_csv(downloads):
    at = open_page("views/predict.py")
    up = at.file_uploader(key="predict_upload")
    up.upload("a.png", gray_png(1)).upload("b.png", gray_png(2)).upload("broken.png", b"\x89PNG\r\n\x1a\nxx").run()
    assert not at.exception
    assert any("broken.png" in str(e.value) for e in at.error)
    table = at.dataframe[0].value
    assert list(table["path"]) == ["a.png", "b.png"]
    assert {"prediction", "confidence", "uncertainty", "reliable", "warnings"} <= set(table.columns)
    header = downloads(at, "Download results (CSV)").decode().splitlines()[0].split(",")
    assert {"prediction", "reliable", "reason", "warnings", "p_glioma", "p_notumor"} <= set(header)
    at.selectbox(key="predict_detail").set_value(1).run()
    assert not at.exception


def test_many_files_stay_open_across_pages_until_closed():
    at = open_page("views/predict.py")
    up = at.file_uploader(key="predict_upload")
    up.upload("a.png", gray_png(1)).upload("b.png", gray_png(2)).upload("c.png", gray_png(3)).run()
    at.selectbox(key="predict_detail").set_value(1).run()
    table = at.dataframe[0].value.copy()
    at.switch_page("views/mask.py").run()
    assert not at.exception and "Reading **b.png**" in texts(at)
    at.switch_page("views/predict.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Reading the 3 files dropped here earlier" in texts(at)
    assert at.dataframe[0].value.equals(table)  # the same table, scored again from nothing
    assert at.selectbox(key="predict_detail").value == 1 and current_case(at).name == "b.png"
    at.button(key="predict_brain_tumor_close_files").click().run()
    assert not at.exception and not at.dataframe and at.selectbox(key="predict_brain_tumor_sample")
    assert "Reading the 3 files" not in texts(at)  # closed before the run: no box offering to close them


def test_predict_lgg_many_slices_table():
    at = open_page("views/predict.py")
    at.radio(key="predict_task").set_value("lgg").run()
    rgb = lambda s: np.dstack([(phantom(seed=s) * 255).astype(np.uint8)] * 3)
    up = at.file_uploader(key="predict_upload")
    up.upload("x.png", png_bytes(rgb(1))).upload("y.png", png_bytes(rgb(2))).run()
    assert not at.exception
    assert {"tumor_probability", "area_px"} <= set(at.dataframe[0].value.columns)


def test_a_mixed_grey_and_colour_upload_gets_the_one_sequence_model():
    # The three-sequence model would read a grey file as three equal sequences: any grey file decides.
    at = open_page("views/predict.py")
    at.radio(key="predict_task").set_value("lgg").run()
    rgb = np.dstack([(phantom(seed=81) * 255).astype(np.uint8)] * 3)
    rgb[..., 0] //= 2  # a real colour composite: the channels differ
    up = at.file_uploader(key="predict_upload")
    up.upload("composite.png", png_bytes(rgb)).upload("t1.png", gray_png(82)).run()
    assert not at.exception
    assert at.selectbox(key="predict_model_lgg_grey").value == "lgg_flair_unet_lite"
    assert "Some files are in colour" in texts(at) and len(at.dataframe[0].value) == 2


def test_patient_details_hidden_until_asked():
    at = open_page("views/predict.py")
    at.file_uploader(key="predict_upload").upload("p.dcm", dicom_bytes((phantom() * 900).astype(np.uint16))).run()
    assert "Doe^Jane" not in texts(at)
    at.toggle(key="predict_patient").set_value(True).run()
    assert "Doe^Jane" in texts(at)


# --------------------------------------------------------------------------- mask


def canvas_state(rgba: np.ndarray) -> dict:
    """What the canvas component sends back after a stroke: its drawing as a PNG data URL."""
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"drawing": {"raw": {"objects": []}, "data": url}, "backgroundFit": None}


@pytest.fixture
def downloads(monkeypatch):
    """The bytes behind a download button of the last AppTest run (its in-memory media store)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1 import app_test

    from streamlit.runtime.media_file_manager import MediaFileManager

    stores, managers = [], []

    class Recording(MemoryMediaFileStorage):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            stores.append(self)

    class RecordingManager(MediaFileManager):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            managers.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)
    monkeypatch.setattr(app_test, "MediaFileManager", RecordingManager)

    def get(at: AppTest, label: str) -> bytes:
        button = next(b for b in at.get("download_button") if b.proto.label == label)
        url = button.proto.url
        if not url and button.proto.deferred_file_id:  # made on request (a callable): as a click makes it
            url = managers[-1].execute_deferred(button.proto.deferred_file_id)
        file_id = url.rsplit("/", 1)[1].split(".")[0]
        return stores[-1].get_file(file_id).content

    return get


def image_captions(at: AppTest) -> list[str]:
    return [img.caption for im in at.get("image") for img in im.proto.imgs]


def current_case(at: AppTest):
    return at.session_state["cases"][at.session_state["case"]]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def assert_everything_agrees(at: AppTest, downloads, expect_edited: bool) -> np.ndarray:
    """Shown area, PNG, NIfTI, DICOM SEG (when offered) and the report all come from the case's mask."""
    from mri_core import export
    from mri_core.io import read_image
    from mri_core.measure import measure

    assert not at.exception, [e.value for e in at.exception]
    case = current_case(at)
    model = mask_model(at)
    k = case.index
    mask = case.mask(model, k)
    assert case.edited(model, k) == expect_edited
    m = measure(mask, case.stack.spacing_mm)
    assert metric(at, "Area") == (f"{m.area_mm2:.0f} mm²" if m.area_mm2 is not None else f"{m.area_px} px")
    caption = "Mask edited by hand" if expect_edited else "The model's mask"
    assert caption in image_captions(at)
    png = np.asarray(Image.open(io.BytesIO(downloads(at, "Mask (PNG)")))) == 255
    np.testing.assert_array_equal(png, mask)
    nifti = read_image(downloads(at, "Masks (NIfTI)"), "mask.nii.gz").slices > 0.5
    np.testing.assert_array_equal(nifti, case.masks(model))
    np.testing.assert_array_equal(nifti[k], mask)
    if "DICOM SEG" in [b.proto.label for b in at.get("download_button")]:
        from test_export import _decoded_seg_frames

        _, frames = _decoded_seg_frames(downloads(at, "DICOM SEG"))  # frames in the SEG's order, each naming its source
        slice_of = {str(ds.SOPInstanceUID): j for j, ds in enumerate(case.stack.dicom_sources)}
        assert sorted(slice_of[uid] for uid, _, _ in frames) == list(range(case.stack.n_slices))
        for uid, _, frame in frames:
            np.testing.assert_array_equal(frame, case.mask(model, slice_of[uid]))
    report = downloads(at, "Report (text)").decode()
    assert report.rstrip() == at.code[0].value.rstrip()  # the report shown is the one downloaded
    assert (f"Area: {m.area_px} px" in report or f"({m.area_px} px)" in report) if m.area_px else "none segmented" in report
    assert ("edited by hand" in report) == expect_edited and ("automatic" in report) == (not expect_edited)
    assert f"File: {case.name}" in report and "Date: " in report and f"Slice: {k + 1}" in report
    assert export.mask_png(mask) == downloads(at, "Mask (PNG)")
    return mask.copy()


def canvas_key(at: AppTest) -> str:
    """The key of the editing canvas as the page last drew it."""
    case = current_case(at)
    return case.canvas_given(mask_model(at), case.index)[0]


def draw(at: AppTest, previous: np.ndarray | None, rows: slice, cols: slice, tool: str) -> np.ndarray:
    """A stroke on the page's canvas as the browser would send it back: the canvas as it stood
    (the starting mask the page gave it, painted by the page's own ``canvas_layer``, plus earlier
    strokes on the same canvas) and the new paint."""
    from mri_core.annotate import canvas_layer, canvas_paints
    from test_case import stroke

    case = current_case(at)
    model = mask_model(at)
    colour, opacity = at.color_picker(key="mask_colour").value, at.slider(key="mask_opacity").value
    key, given = case.canvas_given(model, case.index)
    if previous is None:
        previous = canvas_layer(given, 384, 384, colour, opacity)
    brush, eraser = canvas_paints(colour, opacity)
    rgba = stroke(previous, rows, cols, brush if tool == "brush" else eraser)
    at.session_state[key] = canvas_state(rgba)
    at.run()
    return rgba


def test_mask_edits_stay_put_and_every_export_agrees(downloads):
    at = open_page("views/mask.py")
    model_mask = assert_everything_agrees(at, downloads, expect_edited=False)
    at.toggle(key="mask_edit").set_value(True).run()
    assert not at.exception
    first_key = canvas_key(at)
    # the canvas sends its untouched drawing back (the canvas's own undo does this): nothing changes
    draw(at, None, slice(0, 0), slice(0, 0), "brush")
    np.testing.assert_array_equal(assert_everything_agrees(at, downloads, expect_edited=False), model_mask)
    # brush: a 40 x 60 px block on the 384 px canvas
    canvas = draw(at, None, slice(100, 140), slice(100, 160), "brush")
    brushed = assert_everything_agrees(at, downloads, expect_edited=True)
    assert brushed.sum() > model_mask.sum()
    # reruns (a download click, a widget change) change nothing: the same canvas result is taken once
    for _ in range(2):
        at.run()
        np.testing.assert_array_equal(assert_everything_agrees(at, downloads, expect_edited=True), brushed)
    at.slider(key="mask_brush").set_value(20).run()
    np.testing.assert_array_equal(assert_everything_agrees(at, downloads, expect_edited=True), brushed)
    # eraser over part of the stroke, on the same canvas
    at.radio(key="mask_tool").set_value("eraser").run()
    canvas = draw(at, canvas, slice(100, 140), slice(100, 120), "eraser")
    erased = assert_everything_agrees(at, downloads, expect_edited=True)
    assert 0 < erased.sum() < brushed.sum()
    at.run()
    np.testing.assert_array_equal(assert_everything_agrees(at, downloads, expect_edited=True), erased)
    # the app's undo steps back one edit, and the canvas starts again from the stored mask
    at.button(key="mask_undo").click().run()
    np.testing.assert_array_equal(assert_everything_agrees(at, downloads, expect_edited=True), brushed)
    assert canvas_key(at) != first_key
    # reset: the model's mask, the canvas cleared (a new key), the report automatic again
    key_before_reset = canvas_key(at)
    at.button(key="mask_reset").click().run()
    np.testing.assert_array_equal(assert_everything_agrees(at, downloads, expect_edited=False), model_mask)
    assert canvas_key(at) != key_before_reset
    for _ in range(2):  # and it stays there
        at.run()
        np.testing.assert_array_equal(assert_everything_agrees(at, downloads, expect_edited=False), model_mask)
    # the model's own masks were never touched
    case = current_case(at)
    np.testing.assert_array_equal(case.model_mask(mask_model(at), case.index), model_mask)


def test_mask_edits_of_a_dicom_series_agree_with_its_seg(downloads):
    at = open_page("views/mask.py")
    up = at.file_uploader(key="mask_upload")
    for z in range(3):
        up.upload(f"s{z}.dcm", dicom_bytes((phantom(seed=z) * 1000).astype(np.uint16), position=(0, 0, 5.0 * z),
                                           series_uid="1.2.826.0.1.3680043.8.498.91", instance=z + 1,
                                           study_uid="1.2.826.0.1.3680043.8.498.92",
                                           frame_of_reference_uid="1.2.826.0.1.3680043.8.498.93"))
    up.run()
    assert "DICOM SEG" in [b.proto.label for b in at.get("download_button")]
    at.toggle(key="mask_edit").set_value(True).run()
    from test_export import _decoded_seg_frames

    def algorithm_type() -> str:
        return _decoded_seg_frames(downloads(at, "DICOM SEG"))[0].SegmentSequence[0].SegmentAlgorithmType

    assert algorithm_type() == "AUTOMATIC"
    draw(at, None, slice(50, 200), slice(50, 200), "brush")
    assert_everything_agrees(at, downloads, expect_edited=True)
    # a person's edit is never filed as the model's output: SEMIAUTOMATIC, or MANUAL where the model had drawn nothing
    case = current_case(at)
    model_drew = any(case.model_mask(mask_model(at), k).any() for k in range(case.stack.n_slices))
    assert algorithm_type() == case.mask_origin(mask_model(at)) == ("SEMIAUTOMATIC" if model_drew else "MANUAL")
    at.button(key="mask_reset").click().run()
    assert_everything_agrees(at, downloads, expect_edited=False)
    assert algorithm_type() == "AUTOMATIC"


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
    assert "DICOM SEG" in names  # a failed export shows a caption instead: that fails here
    assert not any("DICOM SEG unavailable" in str(c.value) for c in at.caption)


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
    assert [sl.max for sl in at.slider if sl.label == "Slice"] == [3]
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


def open_compare_on_folders(root: Path) -> AppTest:
    """The comparison page with ``root`` as the server's one folder root, "Data" (single-user mode:
    its one user is the admin); the folder source chosen. Who sees folders: tests/test_auth.py."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.secrets["access"] = {"folder_roots": {"Data": str(root)}}
    at.run()
    at.switch_page("views/compare.py")
    at.run()
    at.radio(key="cmp_source").set_value("a folder on this server").run()
    assert not at.exception and not at.text_input  # chosen from a list, never typed
    return at


def test_compare_on_a_folder(synthetic_data):
    at = open_compare_on_folders(synthetic_data["brain_tumor"].parent)
    at.selectbox(key="cmp_folder").set_value("Data › brain_tumor").run()
    assert not at.exception and not at.error
    assert "24 images" in texts(at)
    at.multiselect(key="cmp_models_brain_tumor").set_value([]).run()
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
    at.file_uploader(key="act_upload").upload("x.png", gray_png(3)).run()
    assert not at.exception and not at.error


# --------------------------------------------------------------------------- issue 21: one case across pages


def test_open_the_mask_editor_on_the_uploaded_scan_at_the_same_slice():
    data = nifti_bytes(np.stack([phantom(seed=40 + i) for i in range(5)], axis=-1), gz=True)
    at = open_page("views/predict.py")
    at.radio(key="predict_task").set_value("lgg").run()
    at.file_uploader(key="predict_upload").upload("patient.nii.gz", data).run()
    next(s for s in at.slider if s.label == "Slice").set_value(2).run()
    assert not at.exception
    link = next(e for e in at.get("page_link"))
    assert "patient.nii.gz, slice 2" in link.proto.label
    at.switch_page("views/mask.py").run()  # what the link does
    assert not at.exception and not at.error
    text = texts(at)
    assert "Reading **patient.nii.gz**" in text and "Bundled sample" not in text
    assert next(s for s in at.slider if s.label == "Slice").value == 2
    assert "Slice 2 of 5" in image_captions(at)
    assert current_case(at).name == "patient.nii.gz"


def test_switching_the_task_keeps_the_upload():
    at = open_page("views/predict.py")
    at.file_uploader(key="predict_upload").upload("mine.png", gray_png(41)).run()
    assert at.subheader[0].value == "mine.png"
    at.radio(key="predict_task").set_value("alzheimer").run()
    assert not at.exception and at.subheader[0].value == "mine.png"
    at.radio(key="predict_task").set_value("lgg").run()
    assert not at.exception and at.subheader[0].value == "mine.png"


def test_the_open_scan_can_be_closed_for_the_samples():
    at = open_page("views/predict.py")
    at.file_uploader(key="predict_upload").upload("mine.png", gray_png(42)).run()
    at.switch_page("views/activations.py").run()
    assert not at.exception and "Reading **mine.png**" in texts(at)
    at.button(key="act_brain_tumor_close").click().run()
    assert not at.exception and at.selectbox(key="act_brain_tumor_sample") and "Reading **mine.png**" not in texts(at)


def test_activation_viewer_on_the_segmenter_default_layer_has_no_channel_slider():
    # The LGG default layer, `mask`, has one channel: a 0..0 slider is refused by Streamlit.
    at = open_page("views/activations.py")
    at.radio(key="act_task").set_value("lgg").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="act_layer_lgg_unet_lite_True").value == "mask"
    assert not [s for s in at.slider if str(s.key).startswith("act_channel_")]
    assert "single channel" in texts(at)


def test_compare_keeps_its_models_after_a_task_change():
    at = open_page("views/compare.py")
    at.radio(key="cmp_task").set_value("alzheimer").run()
    assert not at.exception
    box = at.multiselect(key="cmp_models_alzheimer")
    assert box.value == ["alzheimer_mri_sepnet"]
    assert at.get("plotly_chart") and "not a measure of the models" in texts(at)
    at.multiselect(key="cmp_models_alzheimer").set_value([]).run()
    assert "Choose one model or more" in texts(at)


def test_compare_shows_no_server_path(synthetic_data):
    at = open_page("views/compare.py")
    shown = texts(at)
    assert "/samples" not in shown and str(Path(APP).parent) not in shown
    at = open_compare_on_folders(synthetic_data["brain_tumor"].parent)
    at.selectbox(key="cmp_folder").set_value("Data › brain_tumor").run()
    assert "24 images from the chosen folder" in texts(at)
    assert str(synthetic_data["brain_tumor"]) not in texts(at)


# --------------------------------------------------------------------------- issue 21: abstention, warnings, names


@pytest.fixture
def abstaining(monkeypatch):
    """The core's abstention (built in the cross-source issue) on the real tiny model's predictions."""
    from mri_core import inference

    real = inference.classify_inputs

    def classify_inputs(loaded, x, tta=True, modality="unknown"):
        preds = real(loaded, x, tta, modality)
        for p in preds:
            p.reliable, p.reason = False, "This image's features are far from every training image (test reason)."
        return preds

    monkeypatch.setattr(inference, "classify_inputs", classify_inputs)


@pytest.fixture
def segmenter_abstaining(monkeypatch):
    """The segmenter's abstention (a slice unlike the training slices) on the real tiny model's masks."""
    from mri_core import inference

    real = inference.segment

    def segment(loaded, slices, volume=False, tta=True, modality="unknown"):
        preds = real(loaded, slices, volume, tta, modality)
        for p in preds:
            p.reliable, p.reason = False, "This slice's features are far from every training slice (test reason)."
        return preds

    monkeypatch.setattr(inference, "segment", segment)


def test_a_slice_the_segmenter_cannot_judge_says_so_on_both_pages_and_in_the_reports(segmenter_abstaining, downloads):
    at = open_page("views/predict.py")
    at.radio(key="predict_task").set_value("lgg").run()
    at.file_uploader(key="predict_upload").upload("odd.png", png_bytes(np.dstack([(phantom(seed=77) * 255).astype(np.uint8)] * 3))).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "cannot judge this slice" in at.error[0].value and "(test reason)" in at.error[0].value
    assert metric(at, "Tumour present") == "no call"
    order = [type(e).__name__ for e in _walk(at.main)]
    assert order.index("Error") < order.index("Metric")
    at.switch_page("views/mask.py").run()
    assert not at.exception and "cannot judge this slice" in at.error[0].value and "Reading **odd.png**" in texts(at)
    assert "The model cannot judge this slice: This slice's features" in downloads(at, "Report (text)").decode()


def test_abstention_comes_first_and_the_call_only_on_request(abstaining):
    at = open_page("views/predict.py")
    at.file_uploader(key="predict_upload").upload("gradient.png", gray_png(43)).run()
    assert not at.exception
    assert "cannot judge this image" in at.error[0].value and "(test reason)" in at.error[0].value
    labels = [m.label for m in at.metric]
    assert "Prediction" not in labels and metric(at, "Result") == "No call"
    assert not at.get("plotly_chart")  # probabilities hidden until asked
    order = [type(e).__name__ for e in _walk(at.main)]
    assert order.index("Error") < order.index("Metric")  # the abstention box comes before anything else
    at.toggle(key=next(t.key for t in at.toggle if str(t.key).startswith("predict_show_probs_"))).set_value(True).run()
    assert at.get("plotly_chart") and "Top class, not a call" in texts(at)


def test_warnings_are_above_the_call():
    at = open_page("views/predict.py")
    colour = np.dstack([np.linspace(0, 1, 120)[None].repeat(120, 0)] * 2 + [np.linspace(1, 0, 120)[:, None].repeat(120, 1)])
    at.file_uploader(key="predict_upload").upload("gradient.png", png_bytes((colour * 255).astype(np.uint8))).run()
    assert at.warning, "a colour gradient gets warnings"
    order = [type(e).__name__ for e in _walk(at.main)]
    assert order.index("Warning") < order.index("Metric")


def _walk(node):
    children = getattr(node, "children", None)
    if not children:
        yield node
        return
    for key in sorted(children):
        yield from _walk(children[key])


def test_readable_class_names_and_dementia_stages_in_order():
    at = open_page("views/predict.py")
    at.radio(key="predict_task").set_value("alzheimer").run()
    assert metric(at, "Prediction") in {"non-demented", "very mild dementia", "mild dementia", "moderate dementia"}
    bars = at.get("plotly_chart")[0].proto.spec
    import json
    y = json.loads(bars)["data"][0]["y"]
    assert y[::-1] == ["non-demented", "very mild dementia", "mild dementia", "moderate dementia"]


def test_batch_table_has_abstention_and_warnings_and_is_not_scored_again(monkeypatch):
    from mri_core import rows

    calls = []
    real = rows.score_rows
    monkeypatch.setattr(rows, "score_rows", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = open_page("views/predict.py")
    up = at.file_uploader(key="predict_upload")
    up.upload("c1.png", gray_png(51)).upload("c2.png", gray_png(52)).run()
    table = at.dataframe[0].value
    assert {"reliable", "reason", "warnings", "prediction"} <= set(table.columns)
    assert list(table["slice"]) == [1, 1]
    scored = len(calls)
    assert scored == 2
    at.run()  # what a click on the CSV download did (it now does not even rerun)
    at.selectbox(key="predict_detail").set_value(1).run()
    assert len(calls) == scored, "a rerun scored the files again"
    button = next(b for b in at.get("download_button") if b.proto.label == "Download results (CSV)")
    assert button.proto.ignore_rerun


def test_one_slice_ground_truth_on_a_volume_gives_a_message_not_dice_zero():
    data = nifti_bytes(np.stack([phantom(seed=60 + i) for i in range(5)], axis=-1), gz=True)
    at = open_page("views/mask.py")
    at.file_uploader(key="mask_upload").upload("vol.nii.gz", data).run()
    h, w = current_case(at).stack.slices.shape[1:3]
    truth = np.zeros((h, w), np.uint8)
    truth[20:40, 20:40] = 255
    at.file_uploader(key="mask_truth").upload("gt.png", png_bytes(truth)).run()
    assert "Dice with the ground truth" in [m.label for m in at.metric]  # on the slice it was given for (3)
    next(s for s in at.slider if s.label == "Slice").set_value(1).run()
    assert not at.exception
    assert "Dice with the ground truth" not in [m.label for m in at.metric]
    assert "compared with slice 3; this is slice 1" in texts(at)
    next(s for s in at.slider if s.label == "Slice").set_value(3).run()
    assert "Dice with the ground truth" in [m.label for m in at.metric]


# --------------------------------------------------------------------------- issue 21: report, reading controls


def test_reading_controls_and_pdf_report_on_a_dicom():
    at = open_page("views/mask.py")
    at.file_uploader(key="mask_upload").upload("w.dcm", dicom_bytes((phantom(seed=70) * 1000).astype(np.uint16),
                                                                     window=(500.0, 1000.0), position=(0, 0, 0))).run()
    assert not at.exception
    # the file's window is the one the slice was read through: offered once, as "as read", in scanner units
    first = "as read: the file's window 1"
    assert at.selectbox(key="mask_read_preset").options == [first]
    level = at.slider(key=f"mask_read_level_{first}")
    assert "scanner units" in level.label and level.value == 500.0 and at.slider(key=f"mask_read_width_{first}").value == 1000.0
    level.set_value(400.0).run()
    at.slider(key="mask_read_zoom").set_value(2.0).run()
    at.slider(key="mask_read_cx").set_value(0.3).run()
    assert not at.exception
    names = [b.proto.label for b in at.get("download_button")]
    assert "Report (PDF)" in names
    assert at.toggle(key="dl_pdf_patient").value is False  # identifiers stay out unless turned on
    at.switch_page("views/predict.py").run()
    assert not at.exception and "Report (PDF)" in [b.proto.label for b in at.get("download_button")]
    at.slider(key=f"predict_read_level_{first}").set_value(300.0).run()
    assert not at.exception


def test_removing_the_upload_closes_the_scan():
    at = open_page("views/predict.py")
    at.file_uploader(key="predict_upload").upload("gone.png", gray_png(44)).run()
    assert at.subheader[0].value == "gone.png"
    at.file_uploader(key="predict_upload").set_value([]).run()
    assert not at.exception and "Reading **gone.png**" not in texts(at)
    assert at.selectbox(key="predict_brain_tumor_sample")


def test_a_page_run_keeps_the_shared_keras_state():
    # Streamlit clears Keras's session after every run (gc.collect and TensorFlow's kernel
    # cache: 1.5 s a rerun on the predict page); app.py keeps the shared models' state.
    import keras

    before = keras.backend.get_uid("issue21_probe")
    at = open_page("views/predict.py")
    at.run()
    assert keras.backend.get_uid("issue21_probe") == before + 1


def test_compare_on_a_folder_that_is_not_a_data_set(tmp_path):
    at = open_compare_on_folders(tmp_path)
    at.radio(key="cmp_task").set_value("lgg").run()
    at.selectbox(key="cmp_folder").set_value("Data").run()
    assert not at.exception
    assert at.error and "no slices.csv" in at.error[0].value and str(tmp_path) not in at.error[0].value


def test_a_ct_dicom_is_abstained_on_by_the_core_and_marked_in_the_csv():
    """No stand-in: the core's own rule (a DICOM that says CT) makes the page abstain, and the
    batch CSV marks the row."""
    from factories import dicom_bytes

    ct = dicom_bytes((phantom(64, 64, seed=3) * 1000).astype(np.uint16), modality="CT")
    at = open_page("views/predict.py")
    at.file_uploader(key="predict_upload").upload("head_ct.dcm", ct).run()
    assert not at.exception
    assert "cannot judge this image" in at.error[0].value and "modality is CT" in at.error[0].value
    assert metric(at, "Result") == "No call"
    mr = dicom_bytes((phantom(64, 64, seed=4) * 1000).astype(np.uint16), modality="MR")
    at = open_page("views/predict.py")
    at.file_uploader(key="predict_upload").upload("head_ct.dcm", ct).upload("head_mr.dcm", mr).run()
    assert not at.exception
    table = at.dataframe[0].value
    ct_row = table[table["path"] == "head_ct.dcm"].iloc[0]
    assert not ct_row["reliable"] and ct_row["prediction"] == "no call (abstained)" and "modality is CT" in ct_row["reason"]


def test_a_stage_call_shows_its_measured_balanced_accuracy():
    at = open_page("views/predict.py")
    at.radio(key="predict_task").set_value("alzheimer").run()
    at.file_uploader(key="predict_upload").upload("slice.png", gray_png(7)).run()
    assert not at.exception
    assert "balanced accuracy" in texts(at) and "by chance" in texts(at)  # beside the call, or the "No call"


def test_the_mask_page_picks_the_flair_model_for_a_grey_upload_and_says_why():
    at = open_page("views/mask.py")
    at.file_uploader(key="mask_upload").upload("flair.png", gray_png(5)).run()
    assert not at.exception
    assert at.selectbox(key="mask_model_grey").value == "lgg_flair_unet_lite" == mask_model(at)
    assert "FLAIR" in texts(at) and "grey" in texts(at)
    at.selectbox(key="mask_model_grey").set_value("lgg_unet_lite").run()  # the user can still pick another
    assert not at.exception and "You chose lgg_unet_lite" in texts(at)
    rgb = np.dstack([phantom(64, 64, seed=s) for s in (1, 2, 3)])
    at = open_page("views/mask.py")
    at.file_uploader(key="mask_upload").upload("three.png", png_bytes((rgb * 255).astype(np.uint8))).run()
    assert mask_model(at) == "lgg_unet_lite"


def test_two_files_with_one_name_get_two_results(downloads):
    """Two different scans both called slice.png (from two folders): each gets its own result, and
    looking at either shows its own image (issue 27: they were keyed by name and got one result)."""
    import pandas as pd

    at = open_page("views/predict.py")
    at.file_uploader(key="predict_upload").upload("slice.png", gray_png(1)).upload("slice.png", gray_png(9)).run()
    assert not at.exception
    table = pd.read_csv(io.BytesIO(downloads(at, "Download results (CSV)")))
    assert list(table["path"]) == ["slice.png", "slice.png"]
    probs = table[[c for c in table.columns if c.startswith("p_")]].to_numpy()
    assert not np.allclose(probs[0], probs[1])
    seen = []
    for i in range(2):
        at.selectbox(key="predict_detail").set_value(i).run()
        assert not at.exception
        seen.append(current_case(at))
    assert seen[0].key != seen[1].key and not np.array_equal(seen[0].stack.slices, seen[1].stack.slices)
    options = at.selectbox(key="predict_detail").options
    assert len(set(options)) == 2, options  # the picker tells them apart


def test_a_ct_labelled_dicom_makes_the_mask_page_abstain():
    """A real-looking slice whose file says CT: no presence call and no probability as a call on
    either page; the mask stays, as a reference (issue 27)."""
    ct = dicom_bytes((phantom(64, 64, seed=3) * 1000).astype(np.uint16), modality="CT")
    at = open_page("views/mask.py")
    at.file_uploader(key="mask_upload").upload("head.dcm", ct).run()
    assert not at.exception
    assert "cannot judge this slice" in at.error[0].value and "modality is CT" in at.error[0].value
    assert metric(at, "Tumour probability") == "no call"
    assert any("for reference only" in c for c in image_captions(at))
    at = open_page("views/predict.py")
    at.radio(key="predict_task").set_value("lgg").run()
    at.file_uploader(key="predict_upload").upload("head.dcm", ct).run()
    assert not at.exception
    assert metric(at, "Tumour present") == "no call" and metric(at, "Tumour probability") == "no call"


def test_a_blank_slice_is_abstained_on():
    """An all-black slice was called notumor at 99 %, reliable, with no warning (issue 27)."""
    black = png_bytes(np.zeros((128, 128), np.uint8))
    at = open_page("views/predict.py")
    at.file_uploader(key="predict_upload").upload("black.png", black).run()
    assert not at.exception
    assert "blank or nearly uniform" in at.error[0].value and metric(at, "Result") == "No call"
