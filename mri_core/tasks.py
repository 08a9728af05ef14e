"""The three tasks the app serves: their kind, classes and where their training data lives.

This is the one place a class list is written; cards copy it when a model is trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    kind: str  # "classifier" or "segmenter"
    class_names: tuple[str, ...]
    data_dir: Path
    description: str


TASKS: dict[str, Task] = {
    "brain_tumor": Task(
        name="brain_tumor",
        title="Tumor type",
        kind="classifier",
        class_names=("glioma", "meningioma", "notumor", "pituitary"),
        data_dir=SHARED_DATA / "brain_tumor" / "train",
        description="Axial, coronal or sagittal T1c/T2 brain MRI slice: glioma, meningioma, pituitary tumor or no tumor.",
    ),
    "alzheimer": Task(
        name="alzheimer",
        title="Dementia stage",
        kind="classifier",
        class_names=("MildDemented", "ModerateDemented", "NonDemented", "VeryMildDemented"),
        data_dir=SHARED_DATA / "alzheimer" / "train",
        description="Axial T1 brain MRI slice: stage of dementia (none, very mild, mild, moderate).",
    ),
    "lgg": Task(
        name="lgg",
        title="Lower-grade glioma mask",
        kind="segmenter",
        class_names=("no tumor", "tumor"),
        data_dir=SHARED_DATA / "lgg",
        description="Axial FLAIR slice (3 channels: pre-contrast, FLAIR, post-contrast): FLAIR abnormality mask.",
    ),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
