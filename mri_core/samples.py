"""The sample images bundled in ``samples/`` so a first visit shows something real.

They were taken from our own validation split (never trained on): ``samples/<task>/<class>/``
for the classifiers, ``samples/lgg/`` with the LGG layout (``slices.csv`` and masks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mri_core.io.folders import list_class_folder, list_lgg
from mri_core.tasks import get_task

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"


@dataclass(frozen=True)
class Sample:
    path: Path
    truth: str  # class name, or "tumor"/"no tumor" for LGG
    mask_path: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.path.name} ({self.truth})"


def sample_dir(task: str) -> Path:
    return SAMPLES_DIR / task


def list_samples(task: str) -> list[Sample]:
    t = get_task(task)
    root = sample_dir(task)
    if not root.exists():
        return []
    if t.kind == "segmenter":
        return [Sample(s.image_path, "tumor" if s.has_tumor else "no tumor", s.mask_path) for s in list_lgg(root)]
    folder = list_class_folder(root, t.class_names)
    return [Sample(p, t.class_names[int(y)]) for p, y in zip(folder.paths, folder.labels)]
