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
