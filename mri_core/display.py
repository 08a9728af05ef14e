"""Readable names for the classes the models were trained on, and the order to show them in.

The cards and ``tasks.py`` keep the data sets' folder names (``notumor``, ``NonDemented``): they
are what training and evaluation match on. Anything a clinician reads goes through
:func:`display_name`; dementia stages are listed from none to moderate (:func:`display_order`).
"""

from __future__ import annotations

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
