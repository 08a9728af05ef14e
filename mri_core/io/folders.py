"""The folder layouts the app, the samples and the scorers read: a class-per-folder set
(``root/<class>/*``) and the LGG layout (``slices.csv``, one JPEG and one mask per slice).

Listing and reading only; turning them into training arrays and splits is ``mri_core.data``'s job.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mri_core.io import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".nii", ".nii.gz")
LGG_CHANNELS = ("pre-contrast", "flair", "post-contrast")  # the order of the LGG JPEGs' channels


@dataclass
class ClassFolder:
    paths: list[Path]
    labels: np.ndarray  # int index into class_names
    class_names: list[str]


def list_class_folder(root: Path, class_names: list[str] | tuple[str, ...]) -> ClassFolder:
    """Files of a ``root/<class>/*`` folder, matching folder names to the task's classes.

    Folder names are matched case-insensitively; a folder that names no known class is an error
    (it would silently drop data).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    lookup = {c.lower(): i for i, c in enumerate(class_names)}
    paths, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sub.name.lower() not in lookup:
            raise ValueError(f"folder {sub.name!r} in {root} is not one of the classes {list(class_names)}")
        for f in sorted(sub.rglob("*")):
            if f.is_file() and f.name.lower().endswith(IMAGE_SUFFIXES):
                paths.append(f)
                labels.append(lookup[sub.name.lower()])
    if not paths:
        raise ValueError(f"no images found under {root}/<class>/")
    return ClassFolder(paths, np.asarray(labels, dtype=np.int64), list(class_names))


@dataclass
class LggSlice:
    patient_id: str
    image_path: Path
    mask_path: Path
    has_tumor: int


def list_lgg(root: Path) -> list[LggSlice]:
    """The slices ``root/slices.csv`` lists, by patient and then by the slice number in the file name."""
    root = Path(root)
    table = root / "slices.csv"
    if not table.exists():
        raise FileNotFoundError(f"{table} not found: an LGG folder needs slices.csv")
    rows = []
    with open(table, newline="") as f:
        for r in csv.DictReader(f):
            rows.append(LggSlice(r["patient_id"], root / r["image_path"], root / r["mask_path"], int(r["has_tumor"])))
    # Slice order inside a patient follows the number in the file name.
    def key(s: LggSlice):
        m = re.search(r"_(\d+)\.\w+$", s.image_path.name)
        return (s.patient_id, int(m.group(1)) if m else 0)

    return sorted(rows, key=key)


def mask_from_bytes(data: bytes, filename: str) -> np.ndarray:
    """A 0/255 mask file's bytes (gray or colour) to a bool array; UnreadableImage if not an image."""
    m = read_image(data, filename).slices[0]
    if m.ndim == 3:
        m = m.max(axis=-1)
    return m > 0.5


def read_mask(path: Path) -> np.ndarray:
    return mask_from_bytes(Path(path).read_bytes(), Path(path).name)


def lgg_channel(image: np.ndarray, c: int) -> np.ndarray:
    """Channel ``c`` of an LGG slice; a slice read as grey (its three channels were equal) is its own."""
    return image[..., c] if image.ndim == 3 else image


def sample_slice(stack) -> np.ndarray:
    """The slice a single-label file stands for: its only slice, or the middle one of a stack."""
    return stack.slices[stack.n_slices // 2]
