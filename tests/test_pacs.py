"""mri_core.pacs against a real PACS: Debian's Orthanc with its DICOMweb plugin on 127.0.0.1
(tests/pacs_server.py). Each test loads its own study (fresh UIDs, its own synthetic patient ID)."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from mri_core import pacs
from mri_core.io import read_images
from mri_core.measure import measure, volume_ml
from mri_core.pacs import PacsConfig, PacsError
from pacs_server import USERS, closed_port_url
from scripts import orthanc


@pytest.fixture(autouse=True)
def _empty_cache():
    pacs.CACHE.clear()
    yield
    pacs.CACHE.clear()


def config(server, **kw) -> PacsConfig:
    return PacsConfig(server.url, **kw)


def load_lgg(server, patient_id: str) -> list[list]:
    """The LGG sample's three MR series under ``patient_id``, stored on ``server``."""
    series = orthanc.lgg_mr_series(patient_id=patient_id)
    orthanc.store(server, [ds for s in series for ds in s])
    return series


def series_named(cfg: PacsConfig, patient_id: str, text: str) -> pacs.Series:
    (study,) = pacs.search_studies(cfg, patient_id=patient_id)
    return next(s for s in pacs.list_series(cfg, study.uid) if text in s.description)


def read_one(files) -> object:
    ((_, stack),) = read_images(list(files))
    assert not isinstance(stack, Exception), stack
    return stack


def synthetic_series(positions, sizes=None, patient_id="SYN-BAD", description="AX odd"):
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    sizes = sizes or [(32, 32)] * len(positions)
    return [orthanc.mr_slice(np.full(size, 100 + k % 3000, np.uint16), study_uid=study, series_uid=series, frame_uid=frame,
                             instance=k + 1, position_mm=z, description=description, patient_id=patient_id,
                             patient_name="Synthetic^Odd", series_number=1)
            for k, (z, size) in enumerate(zip(positions, sizes))]


# --------------------------------------------------------------------------- configuration


def test_config_from_the_secrets_section_and_the_environment():
    assert pacs.config_from({}) is None  # no [pacs] section: no PACS shown
    cfg = pacs.config_from({"url": "http://pacs.local/dicom-web/", "username": "u", "password": "s3cret", "timeout_s": 5,
                            "allow_send": False}, environ={})
    assert cfg == PacsConfig("http://pacs.local/dicom-web", "u", "s3cret", 5.0, False, 200.0)
    assert "s3cret" not in repr(cfg)  # the password is never printed
    env = {"MRI_PACS_URL": "http://other:8042/dicom-web", "MRI_PACS_ALLOW_SEND": "yes", "MRI_PACS_MAX_MB": "1.5"}
    cfg = pacs.config_from({"url": "http://pacs.local/dicom-web", "allow_send": False}, environ=env)
    assert (cfg.url, cfg.allow_send, cfg.max_mb, cfg.host) == ("http://other:8042/dicom-web", True, 1.5, "other:8042")
    with pytest.raises(PacsError, match="timeout_s"):
        pacs.config_from({"url": "http://x", "timeout_s": "soon"}, environ={})


# --------------------------------------------------------------------------- search and retrieve


def test_search_by_each_field_and_list_the_series(pacs_server):
    load_lgg(pacs_server, "SYN-SEARCH")
    cfg = config(pacs_server)
    (study,) = pacs.search_studies(cfg, patient_id="SYN-SEARCH")
    assert (study.patient_name, study.date, study.n_series, study.n_instances) == ("Synthetic^Patient", "2001-02-08", 3, 12)
    assert study.uid in {s.uid for s in pacs.search_studies(cfg, patient_name="synthetic patient")}
    assert study.uid in {s.uid for s in pacs.search_studies(cfg, date_from=date(2001, 2, 1), date_to=date(2001, 2, 28))}
    assert study.uid in {s.uid for s in pacs.search_studies(cfg, modality="mr", accession="ACC-0001")}
    with pytest.raises(PacsError, match="No study"):
        pacs.search_studies(cfg, patient_id="SYN-SEARCH", date_from=date(2020, 1, 1))
    series = pacs.list_series(cfg, study.uid)
    assert [(s.description, s.modality, s.n_instances, s.refusal) for s in series] == [
        ("AX pre-contrast", "MR", 4, ""), ("AX FLAIR", "MR", 4, ""), ("AX post-contrast", "MR", 4, "")]


def test_round_trip_the_case_slices_equal_the_files_stored(pacs_server):
    stored = load_lgg(pacs_server, "SYN-ROUND")[1]  # FLAIR
    cfg = config(pacs_server)
    series = series_named(cfg, "SYN-ROUND", "FLAIR")
    seen = []
    got = pacs.retrieve_series(cfg, series, progress=seen.append)
    assert got.downloaded and len(got.files) == 4 and seen == [0.25, 0.5, 0.75, 1.0]
    assert all(name.startswith("pacs_") for name, _ in got.files)  # no identifier in a name
    stack = read_one(got.files)
    expected = read_one([(f"{k}.dcm", pacs._part10(ds)) for k, ds in enumerate(stored)])
    assert stack.modality == "MR" and stack.slices.shape == (4, 256, 256)
    np.testing.assert_array_equal(stack.slices, expected.slices)
    assert stack.spacing_mm == (0.9375, 0.9375) and stack.slice_thickness_mm == 3.0
    assert pacs.refusal_of(stack) == ""


def test_reopening_a_fetched_series_downloads_nothing(pacs_server):
    load_lgg(pacs_server, "SYN-CACHE")
    cfg = config(pacs_server)
    series = series_named(cfg, "SYN-CACHE", "FLAIR")
    first = pacs.retrieve_series(cfg, series)
    orthanc.reset(pacs_server)  # the PACS no longer has it: only the cache can answer
    again = pacs.retrieve_series(cfg, series)
    assert (first.downloaded, again.downloaded) == (True, False) and again.files == first.files


def test_a_compressed_series_is_retrieved_as_stored_and_read(pacs_server):
    jpeg_ls = orthanc.with_new_identity(orthanc.pydicom_files("MR_small_jpeg_ls_lossless.dcm")[0], "SYN-JPEGLS")
    orthanc.store(pacs_server, [jpeg_ls])
    cfg = config(pacs_server)
    (study,) = pacs.search_studies(cfg, patient_id="SYN-JPEGLS")
    (series,) = pacs.list_series(cfg, study.uid)
    got = pacs.retrieve_series(cfg, series)
    import pydicom

    assert pydicom.dcmread(io.BytesIO(got.files[0][1])).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"  # JPEG-LS, as stored
    from pydicom.data import get_testdata_file

    plain = read_one([("mr.dcm", Path(get_testdata_file("MR_small.dcm")).read_bytes())])
    np.testing.assert_array_equal(read_one(got.files).slices, plain.slices)  # lossless: the same pixels


def test_a_ct_series_is_refused_before_any_download(pacs_server):
    orthanc.store(pacs_server, [orthanc.with_new_identity(orthanc.pydicom_files("CT_small.dcm")[0], "SYN-CT")])
    cfg = config(pacs_server)
    (study,) = pacs.search_studies(cfg, patient_id="SYN-CT")
    (series,) = pacs.list_series(cfg, study.uid)
    assert "not MR" in series.refusal
    with pytest.raises(PacsError, match="CT, not MR"):
        pacs.retrieve_series(cfg, series)
    assert pacs.CACHE.get((cfg.url, series.study_uid, series.uid)) is None


@pytest.mark.parametrize("positions, sizes, message", [
    ([0, 3, 6, 15, 18], None, "Slices are missing .* gap of 9.0 mm where it steps 3.0 mm"),
    ([0, 3, 3, 6], None, "same position .*duplicate"),
    ([0, 3, 6], [(32, 32), (32, 32), (48, 32)], "different sizes"),
])
def test_missing_duplicate_or_mixed_slices_are_refused_with_the_reason(pacs_server, positions, sizes, message):
    patient = f"SYN-ODD-{len(positions)}-{positions[2]}"
    orthanc.store(pacs_server, synthetic_series(positions, sizes, patient_id=patient))
    cfg = config(pacs_server)
    (study,) = pacs.search_studies(cfg, patient_id=patient)
    (series,) = pacs.list_series(cfg, study.uid)
    with pytest.raises(PacsError, match=message):
        pacs.retrieve_series(cfg, series)


@pytest.fixture(scope="module")
def long_series(pacs_server):
    """A 2,000-slice MR series (32x32 px: small on disk, long in slices)."""
    datasets = synthetic_series([1.0 * k for k in range(2000)], patient_id="SYN-LONG", description="AX 2000 slices")
    orthanc.store(pacs_server, datasets, batch=250)
    return pacs.list_series(config(pacs_server), pacs.search_studies(config(pacs_server), patient_id="SYN-LONG")[0].uid)[0]


def test_a_2000_slice_series_over_the_limit_is_refused_before_and_while_downloading(pacs_server, long_series):
    assert long_series.n_instances == 2000
    pixels_mb = 2000 * 32 * 32 * 2 / 2**20  # 3.9 MB of pixels; about 2.5 times that with the headers
    with pytest.raises(PacsError, match="too large to open here: 2000 images"):
        pacs.retrieve_series(config(pacs_server, max_mb=pixels_mb / 2), long_series)
    seen = []
    with pytest.raises(PacsError, match=r"passed the 5 MB limit while downloading \(\d+ of 2000 images\)"):
        pacs.retrieve_series(config(pacs_server, max_mb=5), long_series, progress=seen.append)
    assert 0 < seen[-1] < 1  # stopped part-way, and nothing kept
    assert pacs.CACHE.get((pacs_server.url, long_series.study_uid, long_series.uid)) is None


# --------------------------------------------------------------------------- store back


def _case(pacs_server, patient_id: str):
    load_lgg(pacs_server, patient_id)
    cfg = config(pacs_server)
    series = series_named(cfg, patient_id, "FLAIR")
    return cfg, series, read_one(pacs.retrieve_series(cfg, series).files)


def _findings(stack, masks, index, origin="AUTOMATIC", editor="") -> pacs.Findings:
    m = measure(masks[index], stack.spacing_mm)
    return pacs.Findings(index, m.as_dict(), volume_ml(masks, stack.spacing_mm, stack.slice_thickness_mm), bool(masks[index].any()),
                         "lgg_flair_unet_lite", "0123456789ab", origin=origin, editor=editor)


def _fetch(cfg, series: pacs.Series):
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(cfg.url).retrieve_series(series.study_uid, series.uid)


def _pdf() -> bytes:
    from fpdf import FPDF

    doc = FPDF()
    doc.add_page()
    doc.set_font("Helvetica", size=12)
    doc.cell(0, 10, "MRI Insight report")
    return bytes(doc.output())


@pytest.mark.parametrize("edited", [False, True])
def test_seg_sr_and_pdf_are_stored_in_the_source_study_and_read_back(pacs_server, edited):
    import highdicom as hd
    from pypdf import PdfReader

    cfg, source, stack = _case(pacs_server, f"SYN-STORE-{int(edited)}")
    masks = np.zeros(stack.slices.shape, bool)
    masks[1:3, 100:140, 90:150] = True
    if edited:  # a hand edit: a stroke added on slice 2, part of slice 3 erased
        masks[1, 60:70, 40:200] = True
        masks[2, 100:120, 90:150] = False
    findings = _findings(stack, masks, 1, "SEMIAUTOMATIC" if edited else "AUTOMATIC", editor="Jane Doe" if edited else "")
    stored = pacs.send_results(cfg, masks, stack, findings, _pdf())
    assert (stored.n_objects, stored.kinds) == (3, ("SEG", "SR", "PDF")) and stored.n_bytes > 0

    series = {s.modality: s for s in pacs.list_series(cfg, source.study_uid)}
    assert {"MR", "SEG", "SR", "DOC"} <= set(series)
    for modality in ("SEG", "SR", "DOC"):
        assert series[modality].refusal and series[modality].description.startswith("MRI Insight lgg_flair_unet_lite")
    (seg,) = _fetch(cfg, series["SEG"])
    assert (seg.StudyInstanceUID, seg.PatientID, str(seg.PatientName)) == (source.study_uid, "SYN-STORE-" + str(int(edited)),
                                                                           "Synthetic^Patient")
    assert seg.SegmentSequence[0].SegmentAlgorithmType == ("SEMIAUTOMATIC" if edited else "AUTOMATIC")
    assert str(seg.get("ContentCreatorName", "")) == ("Jane Doe^" if edited else "")
    uids = [str(ds.SOPInstanceUID) for ds in stack.dicom_sources]
    pixels = hd.seg.Segmentation.from_dataset(seg).get_pixels_by_source_instance(uids, segment_numbers=[1])[..., 0]
    np.testing.assert_array_equal(pixels.astype(bool), masks)

    (sr,) = _fetch(cfg, series["SR"])
    figures = pacs.read_measurement_report(sr)
    m = findings.measurements
    assert figures["Area"] == pytest.approx((m["area_mm2"], "mm2"))
    assert figures["Long axis"] == pytest.approx((m["longest_diameter_mm"], "mm"))
    assert figures["Short axis"] == pytest.approx((m["perpendicular_diameter_mm"], "mm"))
    assert figures["Volume"] == pytest.approx((findings.volume_ml, "mL"))
    assert (figures["Presence"], figures["model"], figures["version"]) == ("Present", "lgg_flair_unet_lite", "0123456789ab")
    assert sr.StudyInstanceUID == source.study_uid

    (doc,) = _fetch(cfg, series["DOC"])
    assert doc.MIMETypeOfEncapsulatedDocument == "application/pdf" and doc.StudyInstanceUID == source.study_uid
    pdf = bytes(doc.EncapsulatedDocument)[: int(doc.EncapsulatedDocumentLength)]
    assert "MRI Insight report" in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()


def test_the_download_seg_stays_deidentified_while_the_pacs_seg_keeps_the_patient(pacs_server):
    import pydicom

    from mri_core.export import mask_dicom_seg

    _, _, stack = _case(pacs_server, "SYN-DOWNLOAD")
    masks = np.zeros(stack.slices.shape, bool)
    masks[1, 100:120, 100:120] = True
    seg = pydicom.dcmread(io.BytesIO(mask_dicom_seg(masks, stack, "MRI Insight m", "1")))
    assert (seg.PatientID, str(seg.PatientName), seg.PatientIdentityRemoved, seg.StudyDate) == ("", "", "YES", "")
    seg = pacs.seg_for_pacs(masks, stack, _findings(stack, masks, 1, "MANUAL", editor="Jane Doe"))
    assert (seg.PatientID, str(seg.PatientName), seg.StudyDate, seg.AccessionNumber) == ("SYN-DOWNLOAD", "Synthetic^Patient",
                                                                                        "20010208", "ACC-0001")
    assert "PatientIdentityRemoved" not in seg and seg.SeriesDescription.endswith("tumour mask, edited by hand")
    assert (seg.SegmentSequence[0].SegmentAlgorithmType, str(seg.ContentCreatorName)) == ("MANUAL", "Jane Doe^")


# --------------------------------------------------------------------------- faults


def test_credentials_are_sent_and_a_wrong_password_is_said(pacs_with_login):
    (user, password), = USERS.items()
    load_lgg(pacs_with_login, "SYN-AUTH")
    good = config(pacs_with_login, username=user, password=password)
    (study,) = pacs.search_studies(good, patient_id="SYN-AUTH")
    series = next(s for s in pacs.list_series(good, study.uid) if "FLAIR" in s.description)
    assert len(pacs.retrieve_series(good, series).files) == 4
    for bad in (config(pacs_with_login, username=user, password="wrong"), config(pacs_with_login)):
        with pytest.raises(PacsError, match="refused the credentials .*HTTP 401"):
            pacs.search_studies(bad, patient_id="SYN-AUTH")


def test_an_unreachable_pacs_is_said():
    with pytest.raises(PacsError, match="cannot be reached"):
        pacs.search_studies(PacsConfig(closed_port_url(), timeout_s=2))


def test_a_pacs_that_does_not_answer_times_out(silent_server):
    import time

    start = time.monotonic()
    with pytest.raises(PacsError, match="did not answer within 1 s"):
        pacs.search_studies(PacsConfig(silent_server, timeout_s=1))
    assert time.monotonic() - start < 10  # no retries


def test_a_study_without_series_and_an_empty_search_are_said(pacs_server):
    with pytest.raises(PacsError, match="No study on the PACS matches"):
        pacs.search_studies(config(pacs_server), patient_id="NOBODY-HAS-THIS-ID")
    with pytest.raises(PacsError, match="does not have|no series"):
        pacs.list_series(config(pacs_server), generate_uid())


def test_a_refused_store_is_said_and_sending_can_be_turned_off(pacs_refusing_seg):
    cfg, _, stack = _case(pacs_refusing_seg, "SYN-REFUSE")
    masks = np.zeros(stack.slices.shape, bool)
    masks[1, 100:120, 100:120] = True
    findings = _findings(stack, masks, 1)
    with pytest.raises(PacsError, match="refused to store SEG"):
        pacs.send_results(cfg, masks, stack, findings, _pdf())
    with pytest.raises(PacsError, match="turned off"):
        pacs.send_results(config(pacs_refusing_seg, allow_send=False), masks, stack, findings, _pdf())
