"""mri_core.annotate: overlays and the canvas round trip."""

import base64
import io

import numpy as np
from PIL import Image

from factories import phantom
from mri_core.annotate import hex_to_rgb, mask_from_canvas, mask_overlay, mask_to_canvas_object, outlines


def square(n=64):
    m = np.zeros((n, n), bool)
    m[20:40, 10:30] = True
    return m


def test_filled_and_contour_overlay():
    img = phantom(64, 64)
    filled = mask_overlay(img, square(), "#ff0000", opacity=1.0)
    assert filled.shape == (64, 64, 3) and tuple(filled[30, 20]) == (255, 0, 0)
    assert tuple(filled[5, 5]) == (0, 0, 0)
    contour = mask_overlay(img, square(), "#00ff00", contour_only=True)
    assert tuple(contour[20, 20]) == (0, 255, 0) and tuple(contour[30, 20]) != (0, 255, 0)
    both = outlines(img, [(square(), "#ff0000"), (np.roll(square(), 5, 0), "#0000ff")])
    assert tuple(both[20, 20]) == (255, 0, 0) and tuple(both[44, 20]) == (0, 0, 255)


def test_canvas_round_trip_with_brush_and_eraser():
    obj = mask_to_canvas_object(square(), 128, 128)
    rgba = np.asarray(Image.open(io.BytesIO(base64.b64decode(obj["src"].split(",", 1)[1]))))
    assert rgba.shape == (128, 128, 4)
    np.testing.assert_array_equal(mask_from_canvas(rgba, (64, 64)), square())
    # the eraser paints red over part of the mask; the brush adds green elsewhere
    edited = rgba.copy()
    edited[40:60, 20:40] = (200, 60, 0, 230)  # erased rows 20..29 of the 64-px mask
    edited[100:110, 100:110] = (0, 255, 0, 191)
    m = mask_from_canvas(edited, (64, 64))
    assert not m[25, 15] and m[35, 15] and m[52, 52]


def test_hex():
    assert hex_to_rgb("#4fc3f7") == (79, 195, 247)


# --------------------------------------------------------------------------- reading controls


def test_window_level_and_zoom_box():
    from mri_core.annotate import window_level, zoom_box

    img = np.linspace(0, 1, 11, dtype=np.float32)
    np.testing.assert_allclose(window_level(img), img, atol=1e-6)  # level 0.5, width 1: as it is
    narrow = window_level(img, level=0.5, width=0.2)
    assert narrow[0] == 0 and narrow[-1] == 1 and abs(narrow[5] - 0.5) < 1e-5
    assert zoom_box((100, 200), 1.0) == (0, 100, 0, 200)
    assert zoom_box((100, 200), 2.0) == (25, 75, 50, 150)
    assert zoom_box((100, 200), 2.0, (0.0, 1.0)) == (0, 50, 100, 200)  # kept inside


def test_scale_bar_and_orientation_marks():
    from mri_core.annotate import orientation_marks, reading_view, scale_bar_mm
    from mri_core.io import read_image
    from factories import dicom_bytes, nifti_bytes, png_bytes

    assert scale_bar_mm(500, 0.5) == 50.0 and scale_bar_mm(512, 0.9) == 50.0 and scale_bar_mm(256, 0.1) == 5.0
    dcm = read_image(dicom_bytes((phantom() * 1000).astype(np.uint16), position=(0, 0, 0)), "a.dcm")
    assert orientation_marks(dcm) == ("R", "L")  # IOP 1,0,0: columns run to the patient's left
    nii = read_image(nifti_bytes(np.stack([phantom()] * 3, -1)), "v.nii")
    assert orientation_marks(nii) == ("R", "L")
    png = read_image(png_bytes((phantom() * 255).astype(np.uint8)), "a.png")
    assert orientation_marks(png) is None
    plain = reading_view(png.slices[0], out_side=192)
    marked = reading_view(dcm.slices[0], spacing_mm=dcm.spacing_mm, marks=orientation_marks(dcm), out_side=192)
    assert plain.shape == marked.shape == (192, 192, 3) and plain.dtype == np.uint8
    yellow = (marked[..., 0] > 200) & (marked[..., 1] > 180) & (marked[..., 2] < 80)
    assert yellow[:, :30].any() and yellow[:, -30:].any() and yellow[-30:].any()  # R, L and the scale bar
    zoomed = reading_view(png.slices[0], zoom=2.0, out_side=192)
    assert zoomed.shape == (192, 192, 3) and not np.array_equal(zoomed, plain)


def test_window_presets_name_the_window_applied_when_read_once():
    from mri_core.annotate import window_presets
    from mri_core.io import ImageStack

    plain = ImageStack(np.zeros((1, 4, 4), np.float32), "png")
    assert window_presets(plain) == {"as read": (0.5, 1.0)}
    dicom = ImageStack(np.zeros((1, 4, 4), np.float32), "dicom", windows=[("BRAIN", 0.5, 1.0), ("WIDE", 0.4, 2.0)],
                       value_range=(0.0, 80.0))
    assert window_presets(dicom) == {"as read: the file's BRAIN": (0.5, 1.0), "WIDE": (0.4, 2.0)}
    assert dicom.scanner_value(0.5) == 40.0 and plain.scanner_value(0.5) is None
