"""mri_core.case: one case's masks and hand edits, stable under reruns, undo and reset."""

from __future__ import annotations

import numpy as np
import pytest

from mri_core.annotate import canvas_layer, canvas_paints, hex_to_rgb
from mri_core.case import AUTOMATIC, MANUAL, SEMIAUTOMATIC, Case, content_key, read_scans, stack_key
from mri_core.io import ImageStack

SIDE = 384  # the page's canvas


def make_case(n=3, size=256) -> Case:
    stack = ImageStack(slices=np.zeros((n, size, size), np.float32), format="png")
    case = Case(content_key([b"scan"]), "scan.png", stack, index=1)
    masks = np.zeros((n, size, size), bool)
    masks[:, 100:140, 90:150] = True
    case.set_model_result("m", masks, np.full(n, 0.9))
    return case


def stroke(canvas: np.ndarray, rows: slice, cols: slice, paint: str) -> np.ndarray:
    """Paint on a canvas's RGBA the way the browser composites a stroke of CSS ``rgba(...)``."""
    r, g, b, a = (float(v) for v in paint[paint.index("(") + 1 : -1].split(","))
    out = canvas.astype(np.float32).copy()
    region = out[rows, cols]
    below_a = region[..., 3:4] / 255.0
    alpha = a + below_a * (1 - a)
    rgb = (np.array([r, g, b]) * a + region[..., :3] * below_a * (1 - a)) / np.maximum(alpha, 1e-6)
    region[..., :3], region[..., 3:4] = rgb, alpha * 255
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("colour,opacity", [("#ff3333", 0.45), ("#00ff00", 0.75), ("#808080", 0.1)])
def test_a_canvas_with_no_stroke_gives_the_stored_mask_exactly(colour, opacity):
    case = make_case()
    _, base = case.canvas("m", 1, colour, opacity)
    # 256 -> 384 -> 256 by nearest neighbour moves edges: only the strokes may change the mask
    assert not case.apply_canvas("m", 1, canvas_layer(base, SIDE, SIDE, colour, opacity))
    assert np.array_equal(case.mask("m", 1), case.model_mask("m", 1)) and not case.edited("m", 1)


def test_brush_eraser_undo_reset_and_reruns():
    case = make_case()
    colour, opacity = "#ff3333", 0.45
    brush, eraser = canvas_paints(colour, opacity)
    key0, base = case.canvas("m", 1, colour, opacity)
    model_area = int(case.mask("m", 1).sum())
    drawn = stroke(canvas_layer(base, SIDE, SIDE, colour, opacity), slice(30, 60), slice(30, 90), brush)
    assert case.apply_canvas("m", 1, drawn)
    after_brush = case.mask("m", 1).copy()
    assert after_brush.sum() > model_area and case.edited("m", 1) and case.edited("m")
    assert after_brush[30, 30] and not after_brush[0, 0]
    # the same canvas result again (a rerun, a download): nothing changes
    for _ in range(3):
        assert not case.apply_canvas("m", 1, drawn)
        assert case.canvas("m", 1, colour, opacity)[0] == key0
    assert np.array_equal(case.mask("m", 1), after_brush)
    # the eraser over part of the model's mask, on the same canvas
    erased = stroke(drawn, slice(150, 210), slice(135, 180), eraser)  # slice rows 100..139, columns 90..119
    assert case.apply_canvas("m", 1, erased)
    after_eraser = case.mask("m", 1).copy()
    assert not after_eraser[120, 100] and after_eraser[120, 130] and after_eraser[30, 30]
    # brush back over the erased part reads as brush
    again = stroke(erased, slice(150, 165), slice(135, 225), brush)
    assert case.apply_canvas("m", 1, again) and case.mask("m", 1)[105, 100]
    assert case.undo("m", 1)
    assert np.array_equal(case.mask("m", 1), after_eraser)
    key1, base1 = case.canvas("m", 1, colour, opacity)
    assert key1 != key0 and np.array_equal(base1, after_eraser)  # the canvas starts again from the stored mask
    assert case.reset("m", 1)
    assert np.array_equal(case.mask("m", 1), case.model_mask("m", 1)) and not case.edited("m", 1)
    assert case.canvas("m", 1, colour, opacity)[0] != key1
    assert case.undo("m", 1) and np.array_equal(case.mask("m", 1), after_eraser)  # the reset undone
    # other slices untouched; the volume is the stored masks
    assert np.array_equal(case.masks("m")[1], after_eraser)
    assert np.array_equal(case.masks("m")[0], case.model_mask("m", 0))
    assert case.edited_slices("m") == [1]


def test_model_masks_are_read_only_and_checked():
    case = make_case()
    with pytest.raises(ValueError):
        case.model_mask("m", 0)[0, 0] = True
    with pytest.raises(ValueError):
        case.set_model_result("x", np.zeros((2, 5, 5), bool), np.zeros(2))
    with pytest.raises(ValueError):
        case.set_mask("m", 0, np.zeros((5, 5), bool))
    assert not case.set_mask("m", 0, case.model_mask("m", 0))  # no change, no edit
    assert not case.undo("m", 0) and not case.reset("m", 0)


def test_new_colour_restarts_the_canvas_from_the_stored_mask():
    case = make_case()
    key, _ = case.canvas("m", 0, "#ff3333", 0.45)
    m = case.mask("m", 0).copy()
    m[0:10, 0:10] = True
    case.set_mask("m", 0, m)
    key2, base2 = case.canvas("m", 0, "#00aaff", 0.45)
    assert key2 != key and np.array_equal(base2, m)
    layer = canvas_layer(base2, SIDE, SIDE, "#00aaff", 0.45)
    assert tuple(layer[5, 5, :3]) == hex_to_rgb("#00aaff") and layer[5, 5, 3] == round(0.45 * 255)


def test_keys():
    assert content_key([b"a"]) == content_key([b"a"]) != content_key([b"b"])
    assert content_key([b"a", b"b"]) != content_key([b"b", b"a"])
    a, b = ImageStack(np.zeros((2, 4, 4), np.float32), "png"), ImageStack(np.ones((2, 4, 4), np.float32), "png")
    ab = ImageStack(np.stack([a.slices[0], b.slices[0]]), "png")
    ba = ImageStack(np.stack([b.slices[0], a.slices[0]]), "png")
    assert stack_key(ab) != stack_key(ba) and stack_key(ab) == stack_key(ImageStack(ab.slices.copy(), "png"))
    case = make_case()
    assert case.index == 1 and Case("k", "n", case.stack, index=99).index == 2
    case.set_truth(2, np.ones((256, 256)))
    assert list(case.truth_masks) == [2]


def test_slice_mask_is_the_mask_as_it_stands_with_its_measurements():
    from mri_core.measure import measure

    case = make_case()
    seg = case.slice_mask("m", 1)
    assert not seg.edited and seg.tumour_probability == 0.9 and seg.measurements == measure(seg.mask)
    edit = np.zeros((256, 256), bool)
    edit[10:20, 10:30] = True
    case.set_mask("m", 1, edit)
    seg = case.slice_mask("m", 1)
    assert seg.edited and np.array_equal(seg.mask, edit) and seg.measurements.area_px == 200
    assert seg.tumour_probability == 0.9  # the model's: hand edits do not change it


def test_slice_mask_says_where_the_model_cannot_judge_the_slice():
    case = make_case()
    assert case.slice_mask("m", 0).reason == "" and case.abstention("m", 0) == ""
    n = case.stack.n_slices
    case.set_model_result("m", np.zeros((n, 256, 256), bool), np.zeros(n), reasons=["", "far off"] + [""] * (n - 2))
    assert case.slice_mask("m", 1).reason == "far off" and case.slice_mask("m", 0).reason == ""


def test_a_stroke_after_the_canvas_is_drawn_again_keeps_the_earlier_strokes():
    """Correction off and on (or a visit to another page): the canvas is drawn again from its key's
    starting mask. Before the fix that was the mask from before the first stroke, and the second
    stroke, read against it, silently dropped the first (issue 27)."""
    case = make_case()
    colour, opacity = "#ff3333", 0.45
    brush, _ = canvas_paints(colour, opacity)
    mounted: set[str] = set()
    key0, base0 = case.canvas("m", 1, colour, opacity, mounted=mounted.__contains__)
    first = stroke(canvas_layer(base0, SIDE, SIDE, colour, opacity), slice(30, 60), slice(30, 90), brush)
    mounted.add(key0)  # the canvas sent its drawing: it is on screen
    assert case.apply_canvas("m", 1, first)
    after_first = case.mask("m", 1).copy()
    assert case.canvas("m", 1, colour, opacity, mounted=mounted.__contains__)[0] == key0  # still on screen: same canvas
    mounted.clear()  # a run without the canvas: Streamlit forgets its state
    key1, base1 = case.canvas("m", 1, colour, opacity, mounted=mounted.__contains__)
    assert key1 != key0 and np.array_equal(base1, after_first)  # drawn again from the mask as it stands
    # the second stroke on the canvas as the browser shows it: what it was given, plus the stroke
    second = stroke(canvas_layer(base1, SIDE, SIDE, colour, opacity), slice(300, 330), slice(300, 360), brush)
    mounted.add(key1)
    assert case.apply_canvas("m", 1, second)
    both = case.mask("m", 1)
    assert both[30, 30] and both[210, 210]  # stroke 1 (slice rows 20..39) and stroke 2 (rows 200..219)
    assert both.sum() > after_first.sum()


def test_mask_origin_says_who_drew_the_mask():
    case = make_case()
    assert case.mask_origin("m") == AUTOMATIC
    edit = case.mask("m", 1).copy()
    edit[0:10, 0:10] = True
    case.set_mask("m", 1, edit)
    assert case.mask_origin("m") == SEMIAUTOMATIC
    for k in range(case.stack.n_slices):  # every voxel of the model's erased, a lesion drawn elsewhere
        drawn = np.zeros((256, 256), bool)
        drawn[0:20, 0:20] = True
        case.set_mask("m", k, drawn)
    assert case.mask_origin("m") == MANUAL
    case.undo("m", 0)
    assert case.mask_origin("m") == SEMIAUTOMATIC


def test_two_files_with_one_name_are_two_scans():
    from factories import png_bytes, phantom

    one, other = png_bytes((phantom(seed=1) * 255).astype(np.uint8)), png_bytes((phantom(seed=2) * 255).astype(np.uint8))
    (l1, s1, k1), (l2, s2, k2), (l3, s3, k3) = read_scans([("slice.png", one), ("slice.png", other), ("copy.png", one)])
    assert l1 == l2 == "slice.png" and k1 != k2 and not np.array_equal(s1.slices, s2.slices)
    assert k3 == k1  # the same bytes under another name are the same scan
