"""AppTest of the PACS source on Upload & predict and Tumour mask, and of "Send to PACS", against a
real Orthanc (tests/pacs_server.py) and the tiny models."""

from __future__ import annotations

import numpy as np
import pytest

from mri_core import pacs
from test_app import open_page, texts
from test_pacs import load_lgg
from scripts import orthanc


@pytest.fixture(autouse=True)
def _models(use_tiny_models):
    pacs.CACHE.clear()
    yield


def with_pacs(page: str, url: str | None, **settings):
    at = open_page(page)
    if url is not None:
        at.secrets["pacs"] = {"url": url, "timeout_s": 5, **settings}
        at.run()
    return at


def button(at, label: str):
    return next(b for b in at.button if b.label == label)


def search(at, page_key: str, patient_id: str):
    at.radio(key=f"{page_key}_source").set_value("From PACS").run()
    at.text_input(key=f"{page_key}_pacs_pid").set_value(patient_id)
    button(at, "Search the PACS").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_series(at, page_key: str, description: str):
    box = at.selectbox(key=f"{page_key}_pacs_series")
    box.set_value(_index_of(box, description)).run()
    at.button(key=f"{page_key}_pacs_open").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _index_of(box, description: str) -> int:
    return next(i for i, label in enumerate(box.options) if description in label)


def test_no_pacs_is_offered_without_its_settings():
    at = open_page("views/predict.py")
    assert not [r for r in at.radio if r.key == "predict_source"]
    assert "PACS" not in texts(at)


def test_predict_page_opens_a_series_from_the_pacs_as_the_case(pacs_server):
    load_lgg(pacs_server, "SYN-APP-PREDICT")
    at = with_pacs("views/predict.py", pacs_server.url)
    at.radio(key="predict_task").set_value("lgg").run()
    search(at, "predict", "SYN-APP-PREDICT")
    assert "SYN-APP-PREDICT" in texts(at)  # the studies table
    open_series(at, "predict", "FLAIR")
    assert at.subheader[0].value == "PACS: AX FLAIR (4 slices)"
    assert {"Tumour probability", "Area"} <= {m.label for m in at.metric}
    case = at.session_state["cases"][at.session_state["case"]]
    assert case.stack.modality == "MR" and case.stack.n_slices == 4
    at.run()  # a rerun reads the same case, no new download
    assert "Opened from the PACS" in texts(at) and at.subheader[0].value == "PACS: AX FLAIR (4 slices)"
    assert not at.error


def test_a_ct_series_cannot_be_opened_and_an_unreachable_pacs_is_said(pacs_server):
    orthanc.store(pacs_server, [orthanc.with_new_identity(orthanc.pydicom_files("CT_small.dcm")[0], "SYN-APP-CT")])
    at = with_pacs("views/predict.py", pacs_server.url)
    search(at, "predict", "SYN-APP-CT")
    assert at.button(key="predict_pacs_open").disabled
    assert any("not MR" in w.value for w in at.warning)
    from pacs_server import closed_port_url

    at = with_pacs("views/predict.py", closed_port_url())
    search(at, "predict", "ANYONE")
    assert any("cannot be reached" in e.value for e in at.error)
    at.radio(key="predict_source").set_value("Files").run()  # the page keeps serving: a bundled sample
    assert not at.exception and at.subheader[0].value.endswith(".jpg") and at.file_uploader


def _seg_pixels(pacs_server, study_uid: str, source_uids: list[str]) -> tuple[np.ndarray, str]:
    import highdicom as hd
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(pacs_server.url)
    segs = [s for s in pacs.list_series(pacs.PacsConfig(pacs_server.url), study_uid) if s.modality == "SEG"]
    newest = max(segs, key=lambda s: s.uid)  # any; each send is checked right after it
    (ds,) = client.retrieve_series(study_uid, newest.uid)
    seg = hd.seg.Segmentation.from_dataset(ds)
    return seg.get_pixels_by_source_instance(source_uids, segment_numbers=[1])[..., 0].astype(bool), ds


def test_mask_page_from_the_pacs_sends_seg_sr_and_pdf_back_also_after_a_hand_edit(pacs_server):
    load_lgg(pacs_server, "SYN-APP-MASK")
    at = with_pacs("views/mask.py", pacs_server.url)
    search(at, "mask", "SYN-APP-MASK")
    open_series(at, "mask", "FLAIR")
    assert "Send to PACS" in [b.label for b in at.button]
    case = at.session_state["cases"][at.session_state["case"]]
    model = next(s.value for s in at.selectbox if str(s.key).startswith("mask_model"))
    uids = [str(ds.SOPInstanceUID) for ds in case.stack.dicom_sources]
    study = str(case.stack.dicom_sources[0].StudyInstanceUID)

    at.button(key="mask_pacs_send").click().run()
    assert any("Stored on the PACS" in s.value for s in at.success), texts(at)
    pixels, ds = _seg_pixels(pacs_server, study, uids)
    np.testing.assert_array_equal(pixels, case.masks(model))
    assert ds.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"

    edited = case.masks(model)[1].copy()  # a hand edit of slice 2, as the canvas stores it
    edited[40:80, 40:120] = True
    before = {s.uid for s in pacs.list_series(pacs.PacsConfig(pacs_server.url), study) if s.modality == "SEG"}
    case.set_mask(model, 1, edited)
    at.run()
    at.button(key="mask_pacs_send").click().run()
    assert any("Stored on the PACS" in s.value for s in at.success)
    import highdicom as hd
    from dicomweb_client.api import DICOMwebClient

    (new,) = [s for s in pacs.list_series(pacs.PacsConfig(pacs_server.url), study) if s.modality == "SEG" and s.uid not in before]
    (ds,) = DICOMwebClient(pacs_server.url).retrieve_series(study, new.uid)
    pixels = hd.seg.Segmentation.from_dataset(ds).get_pixels_by_source_instance(uids, segment_numbers=[1])[..., 0]
    np.testing.assert_array_equal(pixels.astype(bool), case.masks(model))
    assert pixels[1].astype(bool)[40:80, 40:120].all()
    # SEMIAUTOMATIC, or MANUAL where no voxel of the model's mask is left (the tiny model may find none)
    assert ds.SegmentSequence[0].SegmentAlgorithmType == case.mask_origin(model) != "AUTOMATIC"
    srs = [s for s in pacs.list_series(pacs.PacsConfig(pacs_server.url), study) if s.modality == "SR"]
    figures = [pacs.read_measurement_report(DICOMwebClient(pacs_server.url).retrieve_series(study, s.uid)[0]) for s in srs]
    shown = {m.label: m.value for m in at.metric}
    assert any(f"{f['Area'][0]:.0f} mm²" == shown["Area"] for f in figures), (figures, shown)
    # Every query, retrieve and store is in the audit trail, with counts and flags only.
    from mri_core.store import Store, database_url

    rows = [r for r in Store(database_url()).audit_rows(events=["pacs-query", "pacs-retrieve", "pacs-store"])
            if r["case_hash"] in (None, case.key)]
    kinds = [r["event"] for r in rows]
    assert {"pacs-query", "pacs-retrieve"} <= set(kinds) and kinds.count("pacs-store") >= 2
    assert not any("SYN-APP-MASK" in str(r) or study in str(r) for r in rows)  # no patient ID, no UID


def test_sending_turned_off_is_said_and_a_refusing_pacs_keeps_the_downloads(pacs_server, pacs_refusing_seg):
    load_lgg(pacs_server, "SYN-APP-OFF")
    at = with_pacs("views/mask.py", pacs_server.url, allow_send=False)
    search(at, "mask", "SYN-APP-OFF")
    open_series(at, "mask", "FLAIR")
    assert "Send to PACS" not in [b.label for b in at.button]
    assert "turned off" in texts(at)

    load_lgg(pacs_refusing_seg, "SYN-APP-REFUSE")
    at = with_pacs("views/mask.py", pacs_refusing_seg.url)
    search(at, "mask", "SYN-APP-REFUSE")
    open_series(at, "mask", "FLAIR")
    at.button(key="mask_pacs_send").click().run()
    assert any("refused to store SEG" in e.value and "stay downloadable" in e.value for e in at.error), texts(at)
    assert not at.exception
    assert {"dl_png", "dl_nii", "dl_report"} <= {b.key for b in at.get("download_button")}
