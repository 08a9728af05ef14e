"""Loading the ``../shared/data`` layouts into arrays once, and splitting them honestly.

Images go through exactly the app's path (``io.read_image`` -> ``preprocess.prepare``) and the
result is cached as ``.npz`` under ``cache/`` so a training run does not decode 5,000 JPEGs again.
The layouts themselves are listed by ``mri_core.io.folders``, which the app uses without this module.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mri_core.io import read_image
from mri_core.io.folders import LGG_CHANNELS, LggSlice, lgg_channel, list_class_folder, list_lgg, read_mask
from mri_core.preprocess import prepare, resize

CACHE_DIR = Path(__file__).resolve().parent.parent / "cache"


def _cache_path(kind: str, root: Path, preprocessing: Mapping[str, Any], n: int) -> Path:
    key = json.dumps({"kind": kind, "root": str(Path(root).resolve()), "pre": dict(preprocessing), "n": n}, sort_keys=True)
    return CACHE_DIR / f"{kind}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"


def load_classification(root: Path, class_names, preprocessing: Mapping[str, Any], cache: bool = True):
    """(x, y, paths) for a class-per-folder set, prepared as the card's preprocessing says."""
    folder = list_class_folder(root, class_names)
    path = _cache_path("cls", root, preprocessing, len(folder.paths))
    if cache and path.exists():
        z = np.load(path)
        return z["x"], z["y"], folder.paths
    x = np.stack([prepare(read_image(p.read_bytes(), p.name).slices[0], preprocessing) for p in folder.paths])
    if cache:
        CACHE_DIR.mkdir(exist_ok=True)
        np.savez(path, x=x, y=folder.labels)
    return x, folder.labels, folder.paths


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with each class split in the same proportion."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_val = max(1, int(round(len(idx) * val_fraction)))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(val, dtype=np.int64))


def similarity_groups(x: np.ndarray, threshold: float = 0.95, side: int = 32) -> np.ndarray:
    """Group ids for images that are near-copies of each other (Pearson r > ``threshold`` at 32 px).

    The Alzheimer set does not say which slices come from one subject. Neighbouring slices of
    one brain correlate more closely than slices of different brains, so the connected components
    of the r > ``threshold`` graph recover subjects (how well, and why 0.95: docs/experiments.md).
    """
    small = np.stack([resize(img, (side, side)).reshape(-1) for img in x]).astype(np.float64)
    small -= small.mean(axis=1, keepdims=True)
    small /= np.maximum(np.linalg.norm(small, axis=1, keepdims=True), 1e-12)
    parent = np.arange(len(small))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(small), 1024):  # blockwise: a 5,000 x 5,000 matrix is fine, 50,000 is not
        block = small[start : start + 1024] @ small.T
        for a, b in zip(*np.nonzero(block > threshold)):
            ra, rb = find(start + a), find(b)
            if ra != rb:
                parent[ra] = rb
    roots = np.asarray([find(i) for i in range(len(small))])
    return np.unique(roots, return_inverse=True)[1]


def group_split(groups: np.ndarray, labels: np.ndarray, val_fraction: float, seed: int):
    """Hold out whole groups (pseudo-subjects): ``val_fraction`` of each class's groups, at least one,
    and never all of them."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        g = np.unique(groups[labels == c])
        if len(g) < 2:  # one group only: it cannot be both seen and held out, so split its slices
            idx = np.flatnonzero(labels == c)
            rng.shuffle(idx)
            is_val[idx[: max(1, min(len(idx) - 1, int(round(len(idx) * val_fraction))))]] = True
            continue
        rng.shuffle(g)
        n_val = max(1, min(len(g) - 1, int(round(len(g) * val_fraction))))
        is_val |= np.isin(groups, g[:n_val]) & (labels == c)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


# --------------------------------------------------------------------------- LGG


def load_lgg(root: Path, preprocessing: Mapping[str, Any], cache: bool = True):
    """(x, masks, patients, has_tumor) with images prepared for the model and masks at the same size."""
    slices = list_lgg(root)
    path = _cache_path("lgg", root, preprocessing, len(slices))
    patients = np.asarray([s.patient_id for s in slices])
    has_tumor = np.asarray([s.has_tumor for s in slices], dtype=np.int64)
    if cache and path.exists():
        z = np.load(path)
        return z["x"], z["m"], patients, has_tumor
    size = tuple(preprocessing["size"])
    xs, ms = [], []
    for s in slices:
        xs.append(prepare(read_image(s.image_path.read_bytes(), s.image_path.name).slices[0], preprocessing))
        m = read_mask(s.mask_path).astype(np.float32)
        ms.append((resize(m, size) > 0.5).astype(np.uint8))
    x, m = np.stack(xs), np.stack(ms)[..., None]
    if cache:
        CACHE_DIR.mkdir(exist_ok=True)
        np.savez(path, x=x, m=m)
    return x, m, patients, has_tumor


def patient_split(patients: np.ndarray, has_tumor: np.ndarray, val_patients: int, seed: int):
    """(train_idx, val_idx, val_patient_ids): whole patients on one side only."""
    rng = np.random.default_rng(seed)
    uniq = np.unique(patients)
    rng.shuffle(uniq)
    val_ids = set(uniq[:val_patients].tolist())
    is_val = np.asarray([p in val_ids for p in patients])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val), sorted(val_ids)


# --------------------------------------------------------------------------- other sources for the tumour classifier
#
# The tumour set's ``notumor`` folder comes mostly from another collection than its three tumour
# folders, so a network can learn the source instead of the tumour. These loaders bring slices of
# two other sources into the same shape: LGG patients' FLAIR (grey, from TCGA) and OASIS T1 slices
# (the dementia set, no tumours), each split as its own task splits it.

MIN_TUMOR_PX = 200  # an LGG slice counts as showing a tumour from this many reference pixels (256 px slices)
LGG_VAL_PATIENTS, SPLIT_SEED, VAL_FRACTION = 14, 42, 0.12  # the splits the trained models use
ALZHEIMER_SPLIT_PRE = {"crop": True, "size": [128, 128], "channels": 1, "scale": "[0, 1]"}


def lgg_tumor_labels(slices: list[LggSlice]) -> np.ndarray:
    """Per slice: 1 with at least ``MIN_TUMOR_PX`` reference tumour pixels, 0 with none, -1 between
    (a sliver of tumour: neither a clear tumour slice nor a clean tumour-free one)."""
    px = np.asarray([int(read_mask(s.mask_path).sum()) for s in slices])
    return np.where(px >= MIN_TUMOR_PX, 1, np.where(px == 0, 0, -1))


def load_lgg_channel(root: Path, preprocessing: Mapping[str, Any], channel: str = "flair", cache: bool = True):
    """(x, tumour labels from ``lgg_tumor_labels``, patients, slices): one channel of each LGG slice
    as a grey image through ``prepare``, as a clinician's single-sequence export would look."""
    slices = list_lgg(root)
    c = LGG_CHANNELS.index(channel)
    path = _cache_path(f"lgg-{channel}", root, preprocessing, len(slices))
    patients = np.asarray([s.patient_id for s in slices])
    if cache and path.exists():
        z = np.load(path)
        return z["x"], z["y"], patients, slices
    x = np.stack([prepare(lgg_channel(read_image(s.image_path.read_bytes(), s.image_path.name).slices[0], c), preprocessing)
                  for s in slices])
    y = lgg_tumor_labels(slices)
    if cache:
        CACHE_DIR.mkdir(exist_ok=True)
        np.savez(path, x=x, y=y)
    return x, y, patients, slices


def lgg_validation_patients(root: Path) -> list[str]:
    """The LGG patients the segmenters hold out (``patient_split``, 14 patients, seed 42)."""
    slices = list_lgg(root)
    patients = np.asarray([s.patient_id for s in slices])
    has_tumor = np.asarray([s.has_tumor for s in slices])
    return patient_split(patients, has_tumor, LGG_VAL_PATIENTS, SPLIT_SEED)[2]


def oasis_split(root: Path, class_names, cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices into ``list_class_folder(root)``: the dementia models' split by
    pseudo-subject (``similarity_groups`` on their 128 px crop, ``group_split`` seed 42)."""
    x, y, _ = load_classification(root, class_names, ALZHEIMER_SPLIT_PRE, cache=cache)
    return group_split(similarity_groups(x), y, VAL_FRACTION, SPLIT_SEED)
