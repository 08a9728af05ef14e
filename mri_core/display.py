"""What a clinician reads, worded once: class names and their order, percentages, the mask's
measurements, and the disclaimer (the pages, the text report and the PDF all take them from here).

The cards and ``tasks.py`` keep the data sets' folder names (``notumor``, ``NonDemented``): they
are what training and evaluation match on. Anything a clinician reads goes through
:func:`display_name`; dementia stages are listed from none to moderate (:func:`display_order`).
"""

from __future__ import annotations

DISCLAIMER = "Research and teaching use only. MRI Insight supports and does not replace a radiologist's reading."

DISPLAY_NAMES: dict[str, str] = {
    "glioma": "glioma",
    "meningioma": "meningioma",
    "notumor": "no tumour",
    "pituitary": "pituitary",
    "NonDemented": "non-demented",
    "VeryMildDemented": "very mild dementia",
    "MildDemented": "mild dementia",
    "ModerateDemented": "moderate dementia",
    "no tumor": "no tumour",
    "tumor": "tumour",
}

# Rank of a class where the classes have a natural order (stages of one disease).
_ORDER: dict[str, int] = {"NonDemented": 0, "VeryMildDemented": 1, "MildDemented": 2, "ModerateDemented": 3}


def display_name(class_name: str) -> str:
    """The readable name of a class (unknown names are returned as they are)."""
    return DISPLAY_NAMES.get(class_name, class_name)


def display_order(class_names: list[str] | tuple[str, ...]) -> list[int]:
    """Indices of ``class_names`` in reading order: stages from none to the most severe, other
    classes as the model lists them."""
    return sorted(range(len(class_names)), key=lambda i: (_ORDER.get(class_names[i], 0), i))


def percent(p: float) -> str:
    """A probability as a clinician reads it: whole percents, but never rounded to a certainty: 0.998
    is "99.8 %" (not "100 %"), 0.9996 is "> 99.9 %", and the same at the low end."""
    p = float(p)
    if 0.005 <= p < 0.995:
        return f"{p:.0%}"
    if 0.0005 <= p < 0.9995:
        return f"{p:.1%}"
    if p >= 1.0 or p <= 0.0:
        return f"{p:.0%}"
    return "> 99.9%" if p > 0.5 else "< 0.1%"


def measurement_rows(measurements: dict, spacing_known: bool, *, edited: bool = False, volume_ml: float | None = None,
                     dice: float | None = None, on_slice: bool = True) -> list[tuple[str, str]]:
    """(label, value) rows of a mask's measurements (``Measurements.as_dict``), as both reports write
    them: sizes in mm where the spacing is known (pixels beside), the diameters labelled as the
    largest lesion's (they are: ``measure.measure``), volume and Dice where given."""
    m = measurements
    rows = [("Mask", "edited by hand after the model's segmentation" if edited else "automatic (the model's, not edited)")]
    area_px = int(m.get("area_px") or 0)
    if area_px == 0:
        rows.append(("Tumour", "none segmented on this slice" if on_slice else "none segmented"))
    else:
        mm = spacing_known and m.get("area_mm2") is not None
        rows.append(("Area", f"{m['area_mm2']:.1f} mm² ({area_px} px)" if mm else f"{area_px} px"))
        rows.append(("Lesions", str(int(m.get("n_lesions") or 0))))
        for key, label in (("longest_diameter", "Longest diameter"), ("perpendicular_diameter", "Perpendicular diameter")):
            px, size_mm = m[f"{key}_px"], m.get(f"{key}_mm")
            value = f"{size_mm:.1f} mm ({px:.1f} px)" if mm and size_mm is not None else f"{px:.1f} px"
            rows.append((f"{label}, largest lesion", value))
    if volume_ml is not None:
        rows.append(("Volume over the scan", f"{volume_ml:.2f} mL"))
    if dice is not None:
        rows.append(("Dice with the ground truth", f"{dice:.3f}"))
    if not spacing_known:
        rows.append(("Units", "pixel spacing unknown: sizes in pixels, not millimetres"))
    return rows
