"""Drawing masks over slices and turning a hand-drawn canvas back into a mask.

The canvas (streamlit-drawable-canvas) returns RGBA pixels: the brush paints green and the
eraser red, so a pixel belongs to the mask when it is opaque and greener than it is red.
Painting "black" to erase does not work: the alpha channel still counts it.
"""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np

from mri_core.preprocess import resize, to_rgb, to_uint8

BRUSH = "rgba(0, 255, 0, 0.75)"
ERASER = "rgba(255, 0, 0, 0.85)"


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16))


def base_rgb(image: np.ndarray) -> np.ndarray:
    """A slice (gray or RGB, [0, 1]) as RGB uint8 for drawing on."""
    img = image if image.ndim == 2 else image[..., :3]
    return to_rgb(to_uint8(img)).copy()


def mask_overlay(image: np.ndarray, mask: np.ndarray, colour: str = "#ff3333", opacity: float = 0.45,
                 contour_only: bool = False, thickness: int = 1) -> np.ndarray:
    """RGB uint8: the mask filled (blended at ``opacity``) or outlined over the slice."""
    out = base_rgb(image)
    m = resize(np.asarray(mask, np.uint8), out.shape[:2], nearest=True).astype(bool)
    rgb = np.array(hex_to_rgb(colour), np.float32)
    if contour_only:
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(v) for v in rgb), thickness)
        return out
    out[m] = (out[m] * (1 - opacity) + rgb * opacity).astype(np.uint8)
    return out


def outlines(image: np.ndarray, masks_and_colours: list[tuple[np.ndarray, str]], thickness: int = 1) -> np.ndarray:
    """Several outlines on one slice (e.g. the model's mask and a ground truth)."""
    out = base_rgb(image)
    for mask, colour in masks_and_colours:
        out = mask_overlay(out.astype(np.float32) / 255.0, mask, colour, contour_only=True, thickness=thickness)
    return out


def mask_to_canvas_object(mask: np.ndarray, width: int, height: int) -> dict:
    """A Fabric.js Image object painting the mask in the brush colour, for ``initial_drawing``."""
    from PIL import Image

    m = resize(np.asarray(mask, np.uint8), (height, width), nearest=True).astype(bool)
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[m] = (0, 255, 0, 191)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return {"type": "image", "version": "5.3.0", "originX": "left", "originY": "top", "left": 0, "top": 0,
            "width": width, "height": height, "scaleX": 1, "scaleY": 1, "src": src, "selectable": False}


def mask_from_canvas(rgba: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The mask a user drew (green kept, red erased), resized to the slice's ``shape``."""
    a = np.asarray(rgba)
    drawn = (a[..., 3] > 127) & (a[..., 1].astype(int) > a[..., 0].astype(int))
    return resize(drawn.astype(np.uint8), shape, nearest=True).astype(bool)
