"""mri_core.measure: areas, diameters, lesions and volume on masks with known answers."""

import numpy as np
import pytest

from mri_core.measure import lesions, measure, volume_ml


def disc(h, w, r, c, radius):
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy - r) ** 2 + (xx - c) ** 2 <= radius**2


def test_rectangle():
    m = np.zeros((100, 100), bool)
    m[10:30, 20:80] = True  # 20 rows x 60 cols
    r = measure(m, spacing_mm=(0.5, 0.5))
    assert r.area_px == 1200
    assert r.area_mm2 == pytest.approx(300.0)
    assert r.longest_diameter_px == pytest.approx(np.hypot(19, 59) + 1, abs=0.01)
    assert r.n_lesions == 1
    assert r.centroid_rc == pytest.approx((19.5, 49.5))


def test_disc_diameters_are_equal():
    r = measure(disc(101, 101, 50, 50, 20), spacing_mm=(1.0, 1.0))
    assert r.longest_diameter_px == pytest.approx(41, abs=1.0)
    assert r.perpendicular_diameter_px == pytest.approx(41, abs=1.5)
    assert r.longest_diameter_mm == pytest.approx(41, abs=1.0)


def test_anisotropic_spacing_changes_mm_not_px():
    m = np.zeros((50, 50), bool)
    m[10:11, 5:45] = True  # a horizontal line 40 px long
    r = measure(m, spacing_mm=(2.0, 0.5))
    assert r.longest_diameter_px == pytest.approx(40)
    assert r.longest_diameter_mm == pytest.approx(39 * 0.5 + 0.5)


def test_lesions_and_empty():
    m = disc(100, 100, 20, 20, 5) | disc(100, 100, 70, 70, 10)
    parts = lesions(m)
    assert len(parts) == 2 and parts[0].sum() > parts[1].sum()
    assert measure(m).n_lesions == 2
    empty = measure(np.zeros((10, 10), bool), spacing_mm=(1, 1))
    assert empty.area_px == 0 and empty.n_lesions == 0 and empty.centroid_rc is None
    assert measure(np.zeros((10, 10), bool)).area_mm2 is None


def test_single_pixel():
    m = np.zeros((10, 10), bool)
    m[5, 5] = True
    r = measure(m, spacing_mm=(0.8, 0.8))
    assert r.longest_diameter_px == 1.0 and r.longest_diameter_mm == pytest.approx(0.8)


def test_volume():
    masks = np.zeros((3, 10, 10), bool)
    masks[:, :5, :4] = True  # 60 voxels
    assert volume_ml(masks, (1.0, 1.0), 5.0) == pytest.approx(60 * 5 / 1000)
    assert volume_ml(masks, None, 5.0) is None
