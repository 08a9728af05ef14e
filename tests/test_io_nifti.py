"""mri_core.io.nifti: orientation, spacing, gzip and 4-D volumes, and nibabel's example files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from factories import nifti_bytes
from mri_core.io import UnreadableImage, read_image


def test_nibabel_toy_volume_is_too_small():
    import nibabel.testing

    data = (Path(nibabel.testing.data_path) / "standard.nii.gz").read_bytes()  # 4 x 5 x 7 voxels
    with pytest.raises(UnreadableImage, match="too small"):
        read_image(data, "standard.nii.gz")


def test_nifti_radiological_orientation_and_spacing():
    vol = np.zeros((40, 50, 6), np.float32)  # x (left->right), y (posterior->anterior), z
    vol[35:, :, :] = 1.0  # patient's right side bright
    vol[:, 45:, :] += 0.5  # anterior bright
    stack = read_image(nifti_bytes(vol, zooms=(1.0, 1.5, 3.0)), "v.nii")
    assert stack.slices.shape == (6, 50, 40)  # axial slices, rows = y, cols = x
    s = stack.slices[0]
    assert s[:, :5].mean() > s[:, -5:].mean()  # right of patient on the viewer's left
    assert s[:5, :].mean() > s[-5:, :].mean()  # anterior at the top
    assert stack.spacing_mm == (1.5, 1.0)
    assert stack.slice_thickness_mm == 3.0
    assert stack.affine is not None


def test_nifti_gz_and_4d():
    vol = np.random.default_rng(0).random((20, 20, 5, 3)).astype(np.float32)
    stack = read_image(nifti_bytes(vol, gz=True), "f.nii.gz")
    assert stack.n_slices == 5
    assert any("4-D" in n for n in stack.notes)


def test_nifti_flipped_affine_reads_the_same_anatomy():
    vol = np.random.default_rng(1).random((20, 24, 4)).astype(np.float32)
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = 19
    a = read_image(nifti_bytes(vol), "a.nii").slices
    b = read_image(nifti_bytes(vol[::-1].copy(), affine=flip), "b.nii").slices
    np.testing.assert_allclose(a, b, atol=1e-6)


NIBABEL_FILES = ["anatomical.nii", "functional.nii", "example4d.nii.gz", "example_nifti2.nii.gz"]


@pytest.mark.parametrize("name", NIBABEL_FILES)
def test_nibabel_example_files(name):
    import nibabel.testing

    path = Path(nibabel.testing.data_path) / name
    stack = read_image(path.read_bytes(), name)
    assert stack.n_slices >= 1
    assert np.isfinite(stack.slices).all()
