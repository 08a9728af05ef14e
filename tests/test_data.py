"""mri_core.data: arrays from the folder layouts, and honest splits (the layouts: test_io_folders.py)."""


import numpy as np

from mri_core import data as D
from mri_core.io.folders import list_lgg, read_mask
from mri_core.tasks import TASKS


def test_stratified_split_is_disjoint_and_stratified():
    y = np.repeat(np.arange(4), 50)
    tr, va = D.stratified_split(y, 0.2, 0)
    assert not set(tr) & set(va) and len(tr) + len(va) == 200
    assert np.bincount(y[va]).tolist() == [10, 10, 10, 10]


def test_similarity_groups_find_subjects():
    from factories import phantom

    rng = np.random.default_rng(0)
    subjects = [phantom(64, 64, seed=s) * (0.6 + 0.1 * s) for s in range(3)]
    # three "subjects", each with 4 slightly different slices; different subjects' blobs differ
    x = []
    for s, base in enumerate(subjects):
        base = base.copy()
        base[10 + 15 * s : 20 + 15 * s, 5:60] = 1.0
        x += [base + rng.normal(0, 0.01, base.shape).astype(np.float32) for _ in range(4)]
    groups = D.similarity_groups(np.stack(x)[..., None])
    assert len(np.unique(groups)) == 3
    assert all(len(set(groups[4 * s : 4 * s + 4])) == 1 for s in range(3))


def test_group_split_keeps_groups_whole():
    groups = np.repeat(np.arange(20), 5)
    labels = np.repeat(np.arange(20) % 2, 5)
    tr, va = D.group_split(groups, labels, 0.2, 0)
    assert not set(groups[tr]) & set(groups[va])
    assert set(labels[va]) == {0, 1} and len(np.unique(groups[va])) == 4


def test_lgg_listing_and_patient_split(synthetic_data):
    rows = list_lgg(synthetic_data["lgg"])
    assert len(rows) == 20
    patients = np.array([r.patient_id for r in rows])
    tr, va, ids = D.patient_split(patients, np.array([r.has_tumor for r in rows]), 1, 0)
    assert set(patients[va]) == set(ids) and not set(patients[tr]) & set(ids)
    m = read_mask(rows[1].mask_path)
    assert m.dtype == bool and m.any() == bool(rows[1].has_tumor)


def test_load_classification_uses_the_app_path(synthetic_data):
    from mri_core.io import read_image
    from mri_core.preprocess import prepare

    pre = {"crop": True, "size": [32, 32], "channels": 1}
    x, y, paths = D.load_classification(synthetic_data["alzheimer"], TASKS["alzheimer"].class_names, pre, cache=False)
    np.testing.assert_array_equal(x[3], prepare(read_image(paths[3].read_bytes(), paths[3].name).slices[0], pre))
