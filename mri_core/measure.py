"""Geometry of a tumour mask, as a radiologist measures it.

Area, the longest diameter and the longest diameter perpendicular to it (the bidimensional
RANO/WHO measurement), centroid, number of separate lesions; volume for a stack.
Distances are in pixels, and in millimetres when the pixel spacing is known.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass
class Measurements:
    area_px: int
    area_mm2: float | None
    longest_diameter_px: float
    perpendicular_diameter_px: float
    longest_diameter_mm: float | None
    perpendicular_diameter_mm: float | None
    centroid_rc: tuple[float, float] | None  # (row, column)
    n_lesions: int
    longest_axis: tuple[tuple[float, float], tuple[float, float]] | None  # two (row, col) ends

    def as_dict(self) -> dict:
        return asdict(self)


def lesions(mask: np.ndarray, min_area_px: int = 1) -> list[np.ndarray]:
    """Separate 8-connected lesions, each a boolean mask, largest first."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(np.asarray(mask, np.uint8), connectivity=8)
    order = sorted(range(1, n), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    return [labels == i for i in order if stats[i, cv2.CC_STAT_AREA] >= min_area_px]


def _diameters(points_rc: np.ndarray, scale_rc: np.ndarray):
    """Longest chord of a point set and the longest chord perpendicular to it, in scaled units."""
    pts = points_rc.astype(np.float64) * scale_rc
    if len(pts) == 1:
        return 0.0, 0.0, (tuple(points_rc[0]), tuple(points_rc[0]))
    hull = cv2.convexHull(pts[:, ::-1].astype(np.float32)).reshape(-1, 2)[:, ::-1].astype(np.float64)
    d = np.linalg.norm(hull[:, None] - hull[None], axis=-1)
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    longest = float(d[i, j])
    if longest == 0:
        return 0.0, 0.0, (tuple(points_rc[0]), tuple(points_rc[0]))
    axis = (hull[j] - hull[i]) / longest
    normal = np.array([-axis[1], axis[0]])
    # Perpendicular extent measured across the lesion: spread of the points along the normal.
    proj = pts @ normal
    perpendicular = float(proj.max() - proj.min())
    ends = (tuple((hull[i] / scale_rc).tolist()), tuple((hull[j] / scale_rc).tolist()))
    return longest, perpendicular, ends


def measure(mask: np.ndarray, spacing_mm: tuple[float, float] | None = None) -> Measurements:
    """Measurements of one 2-D mask; diameters of the largest lesion (pixel-edge corrected)."""
    m = np.asarray(mask, bool)
    area = int(m.sum())
    parts = lesions(m)
    if area == 0:
        return Measurements(0, 0.0 if spacing_mm else None, 0.0, 0.0, 0.0 if spacing_mm else None,
                            0.0 if spacing_mm else None, None, 0, None)
    rows, cols = np.nonzero(m)
    centroid = (float(rows.mean()), float(cols.mean()))
    largest = np.argwhere(parts[0])
    # A pixel has width: one pixel is 1 px across, so add one pixel to the centre-to-centre chords.
    long_px, perp_px, ends = _diameters(largest, np.array([1.0, 1.0]))
    long_px, perp_px = long_px + 1.0, perp_px + 1.0
    long_mm = perp_mm = area_mm2 = None
    if spacing_mm:
        sr, sc = float(spacing_mm[0]), float(spacing_mm[1])
        long_mm, perp_mm, _ = _diameters(largest, np.array([sr, sc]))
        long_mm += min(sr, sc)
        perp_mm += min(sr, sc)
        area_mm2 = area * sr * sc
    return Measurements(area, area_mm2, long_px, perp_px, long_mm, perp_mm, centroid, len(parts), ends)


def volume_ml(masks: np.ndarray, spacing_mm: tuple[float, float] | None, slice_thickness_mm: float | None) -> float | None:
    """Volume of a stack of masks (n, H, W) in millilitres; None without the full spacing."""
    if not spacing_mm or not slice_thickness_mm:
        return None
    voxel_mm3 = float(spacing_mm[0]) * float(spacing_mm[1]) * float(slice_thickness_mm)
    return float(np.asarray(masks, bool).sum() * voxel_mm3 / 1000.0)
