"""mri_core.io.raster: PNG, JPEG, BMP and TIFF (8-bit, 16-bit, float, RGB, multi-page)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from factories import encode, phantom, png_bytes
from mri_core.io import read_image


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
