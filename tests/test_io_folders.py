"""mri_core.io.folders: the class-per-folder and LGG layouts, their masks and channels."""

from __future__ import annotations

import numpy as np
import pytest

from mri_core.io.folders import LGG_CHANNELS, lgg_channel, list_class_folder, list_lgg, mask_from_bytes, read_mask
from mri_core.tasks import TASKS


def test_class_folder(synthetic_data):
    f = list_class_folder(synthetic_data["brain_tumor"], TASKS["brain_tumor"].class_names)
    assert len(f.paths) == 24 and np.bincount(f.labels).tolist() == [6, 6, 6, 6]


def test_class_folder_rejects_unknown_folder(tmp_path):
    (tmp_path / "banana").mkdir()
    with pytest.raises(ValueError, match="banana"):
        list_class_folder(tmp_path, ["a", "b"])


def test_lgg_listing_follows_patients_and_slice_numbers(synthetic_data):
    rows = list_lgg(synthetic_data["lgg"])
    assert len(rows) == 20
    first = [r.image_path.name for r in rows if r.patient_id == rows[0].patient_id]
    assert first == [f"{rows[0].patient_id}_{n}.jpg" for n in range(1, 6)]
    for r in rows[:4]:
        m = read_mask(r.mask_path)
        assert m.dtype == bool and m.any() == bool(r.has_tumor)
        np.testing.assert_array_equal(mask_from_bytes(r.mask_path.read_bytes(), r.mask_path.name), m)


def test_lgg_channel_of_colour_and_grey_slices():
    rgb = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    assert LGG_CHANNELS.index("flair") == 1
    np.testing.assert_array_equal(lgg_channel(rgb, 1), rgb[..., 1])
    np.testing.assert_array_equal(lgg_channel(rgb[..., 0], 1), rgb[..., 0])
