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
BRUSH_ALPHA_MIN = 0.7  # strokes at least this opaque, so a brush stroke over an erased area reads as brush
ERASER_ALPHA = 0.85
# Eraser colours to pick from: the one farthest from the mask's colour, so the two never blur.
_ERASER_CHOICES = {"cyan": (0, 255, 255), "magenta": (255, 0, 255), "yellow": (255, 255, 0), "blue": (0, 0, 255),
                   "white": (255, 255, 255), "black": (0, 0, 0)}


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


def eraser_colour(colour: str) -> tuple[str, tuple[int, int, int]]:
    """(name, RGB) of the eraser's paint for a mask drawn in ``colour``: the farthest of a few."""
    rgb = np.array(hex_to_rgb(colour), float)
    name = max(_ERASER_CHOICES, key=lambda n: float(np.sum((np.array(_ERASER_CHOICES[n]) - rgb) ** 2)))
    return name, _ERASER_CHOICES[name]


def canvas_paints(colour: str, opacity: float) -> tuple[str, str]:
    """CSS colours of the brush and the eraser on the editing canvas for a mask in ``colour``."""
    r, g, b = hex_to_rgb(colour)
    er, eg, eb = eraser_colour(colour)[1]
    return f"rgba({r}, {g}, {b}, {max(opacity, BRUSH_ALPHA_MIN):.2f})", f"rgba({er}, {eg}, {eb}, {ERASER_ALPHA})"


def canvas_layer(mask: np.ndarray, width: int, height: int, colour: str = "#00ff00", opacity: float = 0.75) -> np.ndarray:
    """RGBA uint8 (height, width, 4): the mask at canvas size in ``colour`` at ``opacity`` (at least
    0.25, so it can be read back), transparent elsewhere, so the slice and the lesion's edge show through."""
    m = resize(np.asarray(mask, np.uint8), (height, width), nearest=True).astype(bool)
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[m] = (*hex_to_rgb(colour), int(round(255 * max(opacity, 0.25))))
    return rgba


def mask_to_canvas_object(mask: np.ndarray, width: int, height: int, colour: str = "#00ff00", opacity: float = 0.75) -> dict:
    """A Fabric.js Image object painting the mask (``canvas_layer``), for ``initial_drawing``."""
    from PIL import Image

    rgba = canvas_layer(mask, width, height, colour, opacity)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return {"type": "image", "version": "5.3.0", "originX": "left", "originY": "top", "left": 0, "top": 0,
            "width": width, "height": height, "scaleX": 1, "scaleY": 1, "src": src, "selectable": False}


def canvas_mask(rgba: np.ndarray, colour: str | None = None) -> np.ndarray:
    """The mask pixels of a canvas's RGBA at canvas size: painted (alpha > 24) and nearer the mask's
    ``colour`` than the eraser's. Without ``colour``, the legacy rule: opaque and greener than red."""
    a = np.asarray(rgba)
    if colour is None:
        return (a[..., 3] > 127) & (a[..., 1].astype(int) > a[..., 0].astype(int))
    rgb = a[..., :3].astype(np.int32)
    brush = np.array(hex_to_rgb(colour), np.int32)
    eraser = np.array(eraser_colour(colour)[1], np.int32)
    nearer = ((rgb - brush) ** 2).sum(-1) < ((rgb - eraser) ** 2).sum(-1)
    return (a[..., 3] > 24) & nearer


def mask_from_canvas(rgba: np.ndarray, shape: tuple[int, int], colour: str | None = None) -> np.ndarray:
    """The mask a user drew (``canvas_mask``), resized to the slice's ``shape``."""
    return resize(canvas_mask(rgba, colour).astype(np.uint8), shape, nearest=True).astype(bool)


def apply_canvas(base: np.ndarray, rgba: np.ndarray, colour: str, opacity: float) -> np.ndarray:
    """The mask after the strokes on a canvas that started from ``base`` (drawn by ``canvas_layer``).

    Only what the strokes changed at canvas size is carried to the slice: resizing the whole
    canvas back would move the untouched edge by a pixel (nearest-neighbour 256 -> 384 -> 256 is
    not the identity), so a canvas with no stroke gives ``base`` exactly."""
    base = np.asarray(base, bool)
    a = np.asarray(rgba)
    h, w = a.shape[:2]
    before = canvas_mask(canvas_layer(base, w, h, colour, opacity), colour)
    after = canvas_mask(a, colour)
    added = resize((after & ~before).astype(np.uint8), base.shape, nearest=True).astype(bool)
    removed = resize((before & ~after).astype(np.uint8), base.shape, nearest=True).astype(bool)
    return (base | added) & ~removed


# --------------------------------------------------------------------------- reading controls


def window_presets(stack) -> dict[str, tuple[float, float]]:
    """The display windows to offer for an ``io.ImageStack``, name -> (level, width) on the slices'
    [0, 1] scale. The reader already applied the file's first window, so "as read" is that window
    and says so; it is not listed a second time under its own name."""
    if not stack.windows:
        return {"as read": (0.5, 1.0)}
    first, *others = stack.windows
    return {f"as read: the file's {first[0]}": (0.5, 1.0), **{name: (level, width) for name, level, width in others}}


def window_level(image: np.ndarray, level: float = 0.5, width: float = 1.0) -> np.ndarray:
    """Display window on a [0, 1] slice: ``level`` (centre) and ``width`` in the slice's units;
    level 0.5, width 1 leaves it as it is."""
    width = max(float(width), 1e-3)
    return np.clip((np.asarray(image, np.float32) - (level - width / 2)) / width, 0.0, 1.0)


def zoom_box(shape: tuple[int, int], zoom: float, centre: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the part of a slice shown at ``zoom`` (1 = all of it) around
    ``centre`` (fractions of the height and width), kept inside the slice."""
    h, w = shape[:2]
    zoom = max(float(zoom), 1.0)
    ch, cw = max(1, round(h / zoom)), max(1, round(w / zoom))
    top = int(min(max(round(centre[0] * h - ch / 2), 0), h - ch))
    left = int(min(max(round(centre[1] * w - cw / 2), 0), w - cw))
    return top, top + ch, left, left + cw


def scale_bar_mm(width_px: int, col_mm: float) -> float:
    """A round bar length (1, 2, 5 x 10^k mm) about a fifth of the width shown."""
    target = width_px * col_mm / 5
    k = 10 ** np.floor(np.log10(max(target, 1e-6)))
    return float(max(m * k for m in (1, 2, 5) if m * k <= target) if target >= k else k)


def orientation_marks(stack) -> tuple[str, str] | None:
    """(left, right) letters for the image's left and right edges where the file says which way
    the patient lies: NIfTI slices are laid out radiologically (the patient's right on the image's
    left); a DICOM's first ImageOrientationPatient direction is where the columns run (LPS).
    None when unknown (PNG, JPEG, DICOM without orientation)."""
    if getattr(stack, "format", "") == "nifti":
        return ("R", "L")
    sources = getattr(stack, "dicom_sources", None) or []
    try:
        row_dir = np.asarray(sources[0].ImageOrientationPatient, float)[:3]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    axis = int(np.argmax(np.abs(row_dir)))
    if abs(row_dir[axis]) < 0.5:
        return None
    letters = {0: ("R", "L"), 1: ("A", "P"), 2: ("F", "H")}[axis]  # LPS: +x left, +y posterior, +z head
    return letters if row_dir[axis] > 0 else letters[::-1]


def reading_view(image: np.ndarray, level: float = 0.5, width: float = 1.0, zoom: float = 1.0,
                 centre: tuple[float, float] = (0.5, 0.5), spacing_mm: tuple[float, float] | None = None,
                 marks: tuple[str, str] | None = None, out_side: int = 512) -> np.ndarray:
    """RGB uint8 of a slice (or an overlay already drawn, RGB uint8) as a reader sees it: windowed,
    zoomed, at most ``out_side`` px, with a scale bar in mm when the spacing is known and the
    orientation letters on its left and right edges when known."""
    img = np.asarray(image)
    if img.dtype == np.uint8:
        rgb = to_rgb(img[..., :3] if img.ndim == 3 else img).astype(np.float32) / 255.0
    else:
        rgb = to_rgb(np.asarray(image if image.ndim == 2 else image[..., :3], np.float32))
    rgb = window_level(rgb, level, width)
    top, bottom, left, right = zoom_box(rgb.shape[:2], zoom, centre)
    crop = rgb[top:bottom, left:right]
    scale = out_side / max(crop.shape[:2])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    out = cv2.resize((crop * 255).astype(np.uint8), size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.ascontiguousarray(out)
    h, w = out.shape[:2]
    font, yellow = cv2.FONT_HERSHEY_SIMPLEX, (255, 220, 0)
    if spacing_mm:
        col_mm = float(spacing_mm[1]) * crop.shape[1] / w  # mm per output pixel
        bar = scale_bar_mm(w, col_mm)
        px = int(round(bar / col_mm))
        y = h - 14
        cv2.line(out, (12, y), (12 + px, y), yellow, 2)
        for x in (12, 12 + px):
            cv2.line(out, (x, y - 5), (x, y + 5), yellow, 2)
        cv2.putText(out, f"{bar:g} mm", (12, y - 9), font, 0.5, yellow, 1, cv2.LINE_AA)
    if marks:
        cv2.putText(out, marks[0], (6, h // 2), font, 0.7, yellow, 2, cv2.LINE_AA)
        (tw, _), _ = cv2.getTextSize(marks[1], font, 0.7, 2)
        cv2.putText(out, marks[1], (w - tw - 6, h // 2), font, 0.7, yellow, 2, cv2.LINE_AA)
    return out
