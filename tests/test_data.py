"""mri_core.data: folder layouts and honest splits."""

from pathlib import Path

import numpy as np
import pytest

from mri_core import data as D
from mri_core.tasks import TASKS


def test_class_folder(synthetic_data):
    f = D.list_class_folder(synthetic_data["brain_tumor"], TASKS["brain_tumor"].class_names)
    assert len(f.paths) == 24 and np.bincount(f.labels).tolist() == [6, 6, 6, 6]


def test_class_folder_rejects_unknown_folder(tmp_path):
    (tmp_path / "banana").mkdir()
    with pytest.raises(ValueError, match="banana"):
        D.list_class_folder(tmp_path, ["a", "b"])


def test_stratified_split_is_disjoint_and_stratified():
    y = np.repeat(np.arange(4), 50)
    tr, va = D.stratified_split(y, 0.2, 0)
    assert not set(tr) & set(va) and len(tr) + len(va) == 200
    assert np.bincount(y[va]).tolist() == [10, 10, 10, 10]


def test_block_split_keeps_runs_together():
    paths = [Path(f"c/img{i}.jpg") for i in range(320)]
    y = np.zeros(320, int)
    tr, va = D.block_split(paths, y, 0.25, 0, block=32)
    groups_va = {i // 32 for i in va}
    groups_tr = {i // 32 for i in tr}
    assert not groups_va & groups_tr and groups_va


def test_lgg_listing_and_patient_split(synthetic_data):
    rows = D.list_lgg(synthetic_data["lgg"])
    assert len(rows) == 20
    patients = np.array([r.patient_id for r in rows])
    tr, va, ids = D.patient_split(patients, np.array([r.has_tumor for r in rows]), 1, 0)
    assert set(patients[va]) == set(ids) and not set(patients[tr]) & set(ids)
    m = D.read_mask(rows[1].mask_path)
    assert m.dtype == bool and m.any() == bool(rows[1].has_tumor)


def test_load_classification_uses_the_app_path(synthetic_data):
    from mri_core.io import read_image
    from mri_core.preprocess import prepare

    pre = {"crop": True, "size": [32, 32], "channels": 1}
    x, y, paths = D.load_classification(synthetic_data["alzheimer"], TASKS["alzheimer"].class_names, pre, cache=False)
    np.testing.assert_array_equal(x[3], prepare(read_image(paths[3].read_bytes(), paths[3].name).slices[0], pre))
