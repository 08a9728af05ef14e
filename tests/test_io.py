"""mri_core.io: the front (format detection, the READERS table, refusals, limits, several files at once)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from factories import dicom_bytes, encode, nifti_bytes, phantom, png_bytes
from mri_core import io as mio
from mri_core.io import UnreadableImage, read_image, read_images


# --------------------------------------------------------------------------- the front: detect, then READERS


def _gray8() -> np.ndarray:
    return (phantom() * 255).astype(np.uint8)


FORMAT_CASES = [
    # file name, bytes factory, format detect_format names, the stack's format
    ("a.png", lambda: png_bytes(_gray8()), "png", "png"),
    ("a.jpg", lambda: encode(_gray8(), "JPEG", quality=95), "jpeg", "jpeg"),
    ("a.bmp", lambda: encode(_gray8(), "BMP"), "bmp", "bmp"),
    ("a.gif", lambda: encode(_gray8(), "GIF"), "gif", "gif"),
    ("a.tif", lambda: encode(_gray8(), "TIFF"), "tiff", "tiff"),
    ("a.dcm", lambda: dicom_bytes((phantom() * 1000).astype(np.uint16)), "dicom", "dicom"),
    ("IM0001", lambda: dicom_bytes((phantom() * 1000).astype(np.uint16), preamble=False), "dicom-maybe", "dicom"),
    ("a.nii", lambda: nifti_bytes(np.random.default_rng(0).random((20, 20, 3)).astype(np.float32)), "nifti", "nifti"),
    ("a.nii.gz", lambda: nifti_bytes(np.random.default_rng(0).random((20, 20, 3)).astype(np.float32), gz=True), "nifti", "nifti"),
]


@pytest.mark.parametrize("name,make,detected,fmt", FORMAT_CASES, ids=[c[0] for c in FORMAT_CASES])
def test_each_format_is_detected_and_read_by_its_reader(name, make, detected, fmt):
    data = make()
    assert mio.detect_format(data, name) == detected
    assert detected in mio.READERS
    stack = mio.READERS[detected](data)
    assert stack.format == fmt
    np.testing.assert_array_equal(read_image(data, name).slices, stack.slices)


@pytest.mark.parametrize("data,name,fmt", [
    (b"%PDF-1.7\n...", "report.pdf", "pdf"),
    (gzip.compress(b"hello"), "notes.txt.gz2", "gzip"),
    (b"hello, world", "notes.txt", "unknown"),
])
def test_formats_without_a_reader_are_refused(data, name, fmt):
    assert mio.detect_format(data, name) == fmt and fmt not in mio.READERS
    with pytest.raises(UnreadableImage, match=re.escape(mio.REFUSALS.get(fmt, mio.NOT_AN_IMAGE))):
        read_image(data, name)


def test_read_images_keeps_errors_beside_good_files():
    results = read_images([("empty.png", b""), ("ok.png", png_bytes((phantom() * 255).astype(np.uint8)))])
    assert isinstance(results[0][1], UnreadableImage)
    assert results[1][1].n_slices == 1


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
