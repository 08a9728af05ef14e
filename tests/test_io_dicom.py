"""mri_core.io.dicom: generated files, the example files pydicom ships (every one of them is
read or refused in plain words), windows, spacing and patient fields."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from factories import dicom_bytes, phantom
from mri_core.io import ImageStack, UnreadableImage, read_image


# --------------------------------------------------------------------------- DICOM, generated


def test_dicom_rescale_and_window():
    raw = (phantom() * 1000).astype(np.uint16)
    data = dicom_bytes(raw, slope=2.0, intercept=-1000.0, window=(0.0, 1000.0))
    stack = read_image(data, "a.dcm")
    hu = raw.astype(np.float32) * 2 - 1000
    expected = np.clip((hu - (0 - 500)) / 1000, 0, 1)
    np.testing.assert_allclose(stack.slices[0], expected, atol=1e-5)
    assert stack.format == "dicom" and stack.modality == "MR"
    assert stack.spacing_mm == (0.5, 0.5)
    assert stack.patient["PatientName"] == "Doe^Jane"
    # the slices' 0 and 1 are the window's ends in the scanner's (rescaled) units: the reading
    # controls show level and width in them
    assert stack.value_range == (-500.0, 500.0) and stack.scanner_value(0.5) == 0.0


def test_dicom_without_window_uses_full_range():
    raw = (phantom() * 3000).astype(np.uint16)
    stack = read_image(dicom_bytes(raw), "b.dcm")
    assert stack.slices.min() == 0.0 and stack.slices.max() == 1.0
    assert stack.value_range is None  # each frame stretched over its own range: no one mapping


def test_dicom_monochrome1_is_inverted():
    raw = (phantom() * 1000).astype(np.uint16)
    m2 = read_image(dicom_bytes(raw), "m2.dcm").slices[0]
    m1 = read_image(dicom_bytes(raw, photometric="MONOCHROME1"), "m1.dcm")
    np.testing.assert_allclose(m1.slices[0], 1.0 - m2, atol=1e-6)
    assert any("MONOCHROME1" in n for n in m1.notes)


def test_dicom_multiframe():
    frames = np.stack([(phantom(seed=i) * 1000).astype(np.uint16) for i in range(4)])
    stack = read_image(dicom_bytes(frames), "mf.dcm")
    assert stack.slices.shape == (4, 96, 96)


def test_dicom_rgb():
    rgb = np.dstack([(phantom() * 255).astype(np.uint8), np.zeros((96, 96), np.uint8), np.zeros((96, 96), np.uint8)])
    stack = read_image(dicom_bytes(rgb), "rgb.dcm")
    assert stack.slices.shape == (1, 96, 96, 3)
    assert any("colour" in n for n in stack.notes)


def test_dicom_without_preamble_is_read_by_extension():
    data = dicom_bytes((phantom() * 1000).astype(np.uint16), preamble=False)
    assert data[128:132] != b"DICM"
    assert read_image(data, "IM0001").n_slices == 1


# --------------------------------------------------------------------------- DICOM, pydicom's own files

PYDICOM_FILES = [
    ("MR_small.dcm", 1),  # uncompressed, 16-bit signed
    ("MR_small_RLE.dcm", 1),  # RLE lossless
    ("MR_small_jpeg_ls_lossless.dcm", 1),  # JPEG-LS
    ("MR_small_jp2klossless.dcm", 1),  # JPEG 2000 lossless
    ("SC_rgb_jpeg_dcmtk.dcm", 1),  # JPEG baseline (process 1), RGB
    ("JPGExtended.dcm", 1),  # JPEG extended (process 2/4)
    ("SC_rgb_rle_2frame.dcm", 2),  # RGB, RLE, multi-frame
    ("CT_small.dcm", 1),  # another modality
]


@pytest.mark.parametrize("name,frames", PYDICOM_FILES)
def test_pydicom_example_files(name, frames):
    from pydicom.data import get_testdata_file

    path = Path(get_testdata_file(name))
    stack = read_image(path.read_bytes(), path.name)
    assert stack.n_slices == frames
    assert np.isfinite(stack.slices).all()
    assert stack.slices.max() > stack.slices.min()


def test_compressed_matches_uncompressed():
    from pydicom.data import get_testdata_file

    ref = read_image(Path(get_testdata_file("MR_small.dcm")).read_bytes(), "a.dcm").slices
    for name in ("MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"):
        got = read_image(Path(get_testdata_file(name)).read_bytes(), name).slices
        np.testing.assert_allclose(got, ref, atol=1e-6, err_msg=name)


def test_pydicom_files_without_images():
    from pydicom.data import get_testdata_file

    for name in ("test-SR.dcm", "rtplan.dcm"):
        with pytest.raises(UnreadableImage, match="holds no image"):
            read_image(Path(get_testdata_file(name)).read_bytes(), name)


def _pydicom_test_files() -> list[Path]:
    from pydicom.data import get_testdata_files

    return sorted(Path(f) for f in get_testdata_files() if Path(f).is_file())


def test_pydicom_ships_its_test_files():
    names = {p.name for p in _pydicom_test_files()}
    assert len(names) > 50 and {"badVR.dcm", "MR_small.dcm", "rtplan.dcm"} <= names


@pytest.mark.parametrize("path", _pydicom_test_files(), ids=lambda p: p.name)
def test_every_file_pydicom_ships_is_read_or_refused_in_plain_words(path):
    """Each example file (compressed, deflated, odd VRs, no pixels, not DICOM at all) gives a
    valid stack or UnreadableImage; nothing else may escape the reader."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the odd files it still parses
        try:
            stack = read_image(path.read_bytes(), path.name)
        except UnreadableImage as exc:
            assert str(exc).strip() and "Traceback" not in str(exc)
            return
    assert isinstance(stack, ImageStack) and stack.n_slices >= 1
    assert stack.slices.dtype == np.float32 and np.isfinite(stack.slices).all()
    assert 0.0 <= stack.slices.min() and stack.slices.max() <= 1.0


def test_bad_vr_is_refused_as_a_damaged_header():
    from pydicom.data import get_testdata_file

    data = Path(get_testdata_file("badVR.dcm")).read_bytes()  # NumberOfFrames (IS) holds "1A"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UnreadableImage, match="damaged or non-standard header"):
            read_image(data, "badVR.dcm")


def test_truncated_dicom():
    from pydicom.data import get_testdata_file

    data = Path(get_testdata_file("MR_small.dcm")).read_bytes()
    with pytest.raises(UnreadableImage):
        read_image(data[: len(data) // 2], "cut.dcm")


def test_dicom_window_presets_in_slice_units():
    from factories import dicom_bytes
    from pydicom import dcmread
    import io as _io

    data = dicom_bytes((phantom() * 1000).astype(np.uint16), window=(500.0, 1000.0))
    ds = dcmread(_io.BytesIO(data))
    ds.WindowCenter, ds.WindowWidth = [500.0, 250.0], [1000.0, 500.0]
    ds.WindowCenterWidthExplanation = ["FULL", "NARROW"]
    buf = _io.BytesIO()
    ds.save_as(buf)
    stack = read_image(buf.getvalue(), "w.dcm")
    assert stack.windows == [("FULL", 0.5, 1.0), ("NARROW", 0.25, 0.5)]
    assert read_image(dicom_bytes((phantom() * 1000).astype(np.uint16)), "n.dcm").windows == []


@pytest.mark.parametrize("field,value,said", [("PixelSpacing", "abc\\def", "PixelSpacing (abc\\def)"),
                                              ("PixelSpacing", "0\\0.5", "not a positive size"),
                                              ("SliceThickness", "thick", "SliceThickness (thick)")])
def test_a_malformed_spacing_is_said_not_swallowed(field, value, said):
    """issue 27: a malformed PixelSpacing was dropped silently and the page blamed PNG/JPEG."""
    import io as _io

    import pydicom
    from pydicom import config

    ds = pydicom.dcmread(_io.BytesIO(dicom_bytes((phantom() * 1000).astype(np.uint16))))
    with config.disable_value_validation():  # a damaged field, written as text where numbers belong
        ds[field] = pydicom.DataElement(pydicom.datadict.tag_for_keyword(field), "LO", value)
        buf = _io.BytesIO()
        ds.save_as(buf)
    stack = read_image(buf.getvalue(), "odd.dcm")
    assert any(said in note for note in stack.notes), stack.notes
    if field == "PixelSpacing":
        assert stack.spacing_mm is None
