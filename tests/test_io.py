"""mri_core.io: every reader, generated files and the real example files pydicom and nibabel ship."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest

from factories import dicom_bytes, encode, nifti_bytes, phantom, png_bytes
from mri_core import io as mio
from mri_core.io import UnreadableImage, read_image, read_images


# --------------------------------------------------------------------------- raster formats

RASTER_CASES = [
    # name, bytes factory, expected ndim of one slice
    ("gray8.png", lambda: png_bytes((phantom() * 255).astype(np.uint8)), 2),
    ("gray16.png", lambda: png_bytes((phantom() * 65535).astype(np.uint16)), 2),
    ("rgb.png", lambda: png_bytes(np.dstack([(phantom() * 255).astype(np.uint8)] * 2 + [np.zeros((96, 96), np.uint8)])), 3),
    ("gray.jpg", lambda: encode((phantom() * 255).astype(np.uint8), "JPEG", quality=95), 2),
    ("rgb_gray.jpg", lambda: encode(np.dstack([(phantom() * 255).astype(np.uint8)] * 3), "PNG"), 2),
    ("gray.bmp", lambda: encode((phantom() * 255).astype(np.uint8), "BMP"), 2),
    ("gray8.tif", lambda: encode((phantom() * 255).astype(np.uint8), "TIFF"), 2),
]


@pytest.mark.parametrize("name,make,ndim", RASTER_CASES, ids=[c[0] for c in RASTER_CASES])
def test_raster_formats(name, make, ndim):
    stack = read_image(make(), name)
    assert stack.n_slices == 1
    assert stack.slices.dtype == np.float32
    assert stack.slices[0].ndim == ndim
    assert 0.0 <= stack.slices.min() and stack.slices.max() <= 1.0
    assert stack.slices.max() > 0.5  # the bright blob survived the scaling


def test_8bit_is_scaled_exactly():
    a = (phantom() * 255).astype(np.uint8)
    stack = read_image(png_bytes(a), "x.png")
    np.testing.assert_array_equal(stack.slices[0], a.astype(np.float32) / 255)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_tiff_16bit_and_float(dtype):
    import tifffile

    a = (phantom() * 4000).astype(dtype)
    buf = io.BytesIO()
    tifffile.imwrite(buf, a)
    stack = read_image(buf.getvalue(), "scan.tif")
    assert stack.format == "tiff"
    assert stack.slices.shape == (1, 96, 96)
    assert stack.slices.max() == pytest.approx(1.0)
    assert stack.slices.min() == pytest.approx(0.0)


def test_tiff_rgb_and_multipage():
    import tifffile

    rgb = np.dstack([(phantom() * 255).astype(np.uint8), np.zeros((96, 96), np.uint8), (phantom(seed=1) * 255).astype(np.uint8)])
    buf = io.BytesIO()
    tifffile.imwrite(buf, rgb, photometric="rgb")
    assert read_image(buf.getvalue(), "c.tif").slices.shape == (1, 96, 96, 3)
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.stack([(phantom(seed=i) * 255).astype(np.uint8) for i in range(3)]))
    assert read_image(buf.getvalue(), "m.tif").slices.shape == (3, 96, 96)


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


def test_dicom_without_window_uses_full_range():
    raw = (phantom() * 3000).astype(np.uint16)
    stack = read_image(dicom_bytes(raw), "b.dcm")
    assert stack.slices.min() == 0.0 and stack.slices.max() == 1.0


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


def test_dicom_series_is_ordered_by_position():
    uid = "1.2.826.0.1.3680043.8.498.1"
    files = []
    for z in (10.0, 0.0, 5.0):  # dropped out of order
        img = np.full((32, 32), int(z * 10) + 1, np.uint16)
        img[0, 0] = 0
        files.append((f"s{z}.dcm", dicom_bytes(img, position=(0, 0, z), series_uid=uid, instance=int(z))))
    files.append(("other.png", png_bytes((phantom() * 255).astype(np.uint8))))
    results = read_images(files)
    assert len(results) == 2
    label, stack = results[0]
    assert stack.n_slices == 3
    assert stack.slice_thickness_mm == pytest.approx(5.0)
    positions = [float(ds.ImagePositionPatient[2]) for ds in stack.dicom_sources]
    assert positions == [0.0, 5.0, 10.0]
    assert results[1][0] == "other.png"


def test_read_images_keeps_errors_beside_good_files():
    results = read_images([("empty.png", b""), ("ok.png", png_bytes((phantom() * 255).astype(np.uint8)))])
    assert isinstance(results[0][1], UnreadableImage)
    assert results[1][1].n_slices == 1


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


def test_nibabel_toy_volume_is_too_small():
    import nibabel.testing

    data = (Path(nibabel.testing.data_path) / "standard.nii.gz").read_bytes()  # 4 x 5 x 7 voxels
    with pytest.raises(UnreadableImage, match="too small"):
        read_image(data, "standard.nii.gz")


def test_truncated_dicom():
    from pydicom.data import get_testdata_file

    data = Path(get_testdata_file("MR_small.dcm")).read_bytes()
    with pytest.raises(UnreadableImage):
        read_image(data[: len(data) // 2], "cut.dcm")


# --------------------------------------------------------------------------- NIfTI


def test_nifti_radiological_orientation_and_spacing():
    vol = np.zeros((40, 50, 6), np.float32)  # x (left->right), y (posterior->anterior), z
    vol[35:, :, :] = 1.0  # patient's right side bright
    vol[:, 45:, :] += 0.5  # anterior bright
    stack = read_image(nifti_bytes(vol, zooms=(1.0, 1.5, 3.0)), "v.nii")
    assert stack.slices.shape == (6, 50, 40)  # axial slices, rows = y, cols = x
    s = stack.slices[0]
    assert s[:, :5].mean() > s[:, -5:].mean()  # right of patient on the viewer's left
    assert s[:5, :].mean() > s[-5:, :].mean()  # anterior at the top
    assert stack.spacing_mm == (1.5, 1.0)
    assert stack.slice_thickness_mm == 3.0
    assert stack.affine is not None


def test_nifti_gz_and_4d():
    vol = np.random.default_rng(0).random((20, 20, 5, 3)).astype(np.float32)
    stack = read_image(nifti_bytes(vol, gz=True), "f.nii.gz")
    assert stack.n_slices == 5
    assert any("4-D" in n for n in stack.notes)


def test_nifti_flipped_affine_reads_the_same_anatomy():
    vol = np.random.default_rng(1).random((20, 24, 4)).astype(np.float32)
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = 19
    a = read_image(nifti_bytes(vol), "a.nii").slices
    b = read_image(nifti_bytes(vol[::-1].copy(), affine=flip), "b.nii").slices
    np.testing.assert_allclose(a, b, atol=1e-6)


NIBABEL_FILES = ["anatomical.nii", "functional.nii", "example4d.nii.gz", "example_nifti2.nii.gz"]


@pytest.mark.parametrize("name", NIBABEL_FILES)
def test_nibabel_example_files(name):
    import nibabel.testing

    path = Path(nibabel.testing.data_path) / name
    stack = read_image(path.read_bytes(), name)
    assert stack.n_slices >= 1
    assert np.isfinite(stack.slices).all()


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "data,name,match",
    [
        (b"", "x.png", "empty"),
        (b"%PDF-1.7\n...", "report.pdf", "PDF"),
        (b"hello, world", "notes.txt", "not an image"),
        (gzip.compress(b"hello"), "x.gz", "does not hold a NIfTI"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "x.png", "damaged|cut off"),
    ],
)
def test_refusals(data, name, match):
    with pytest.raises(UnreadableImage, match=match):
        read_image(data, name)


def test_unreadable_is_value_error():
    assert issubclass(UnreadableImage, ValueError)


def test_limits_agree_with_streamlit_config():
    import tomllib

    cfg = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["maxUploadSize"] == mio.MAX_FILE_MB


def test_join_slices_orders_by_file_name_and_refuses_mixed_sizes():
    a, b, c = (read_image(png_bytes((phantom(seed=z) * 255).astype(np.uint8)), "x.png") for z in range(3))
    vol = mio.join_slices([("p_10.png", c), ("p_2.png", b), ("p_1.png", a)])
    assert vol.n_slices == 3 and vol.slice_thickness_mm is None
    np.testing.assert_array_equal(vol.slices, np.concatenate([a.slices, b.slices, c.slices]))
    assert "ordered by file name (p_1.png … p_10.png)" in vol.notes[0]
    small = read_image(png_bytes((phantom(40, 40) * 255).astype(np.uint8)), "s.png")
    with pytest.raises(UnreadableImage, match="differ in size"):
        mio.join_slices([("a.png", a), ("s.png", small)])
    with pytest.raises(UnreadableImage, match="at least two"):
        mio.join_slices([("a.png", a)])
    with pytest.raises(UnreadableImage, match="already holds a stack"):
        mio.join_slices([("a.png", a), ("v.png", vol)])


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
