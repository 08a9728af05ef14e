"""What every reader shares: the limits, :class:`ImageStack`, :class:`UnreadableImage`, and the
size, finite-value and scaling helpers that make every format land in the same [0, 1] arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Limits, set here and nowhere else (.streamlit/config.toml's maxUploadSize must agree with
# MAX_FILE_MB; a test checks it).
MAX_FILE_MB = 200
MAX_FILE_BYTES = MAX_FILE_MB * 1024 * 1024
MAX_SLICE_PIXELS = 25_000_000  # 5000 x 5000; beyond that a "slice" is a photo or a bomb
MAX_TOTAL_VOXELS = 64_000_000  # e.g. 512 x 512 x 244; 256 MB as float32
MIN_SIDE = 8  # smaller than this is an icon, not a scan


class UnreadableImage(ValueError):
    """The file is not an image this app can read; the message says why in plain words."""


@dataclass
class ImageStack:
    """Slices of one image or one series, with what is known about their geometry."""

    slices: np.ndarray  # float32 in [0, 1]; (n, H, W) or (n, H, W, 3)
    format: str  # "png", "jpeg", "tiff", "bmp", "dicom", "nifti"
    modality: str = "unknown"  # DICOM Modality (e.g. "MR") when known
    spacing_mm: tuple[float, float] | None = None  # (row, column) pixel spacing
    slice_thickness_mm: float | None = None  # distance between slices in a stack
    notes: list[str] = field(default_factory=list)  # things the user should know
    patient: dict[str, str] = field(default_factory=dict, repr=False)  # shown only on request
    # voxel -> world (RAS mm) of the NIfTI export's layout (export.mask_nifti): a NIfTI's own; a
    # DICOM's from ImagePositionPatient, ImageOrientationPatient and the spacing (dicom_affine)
    affine: np.ndarray | None = field(default=None, repr=False)
    dicom_sources: list[Any] = field(default_factory=list, repr=False)  # for DICOM SEG export
    # display windows the file names (DICOM WindowCenter/Width), as (name, level, width) in the
    # slices' [0, 1] units; values the reader's own window clipped stay clipped
    windows: list[tuple[str, float, float]] = field(default_factory=list)
    # the scanner's values (after the rescale: HU for CT, the scanner's units for MR) that the slices'
    # 0 and 1 stand for, where one mapping holds for every slice (a DICOM read through its window)
    value_range: tuple[float, float] | None = None

    def scanner_value(self, unit: float) -> float | None:
        """A value on the slices' [0, 1] scale in the scanner's units (None where they are not known)."""
        if self.value_range is None:
            return None
        v0, v1 = self.value_range
        return v0 + unit * (v1 - v0)

    @property
    def n_slices(self) -> int:
        return int(self.slices.shape[0])

    @property
    def is_color(self) -> bool:
        return self.slices.ndim == 4

    def slice(self, index: int) -> np.ndarray:
        return self.slices[index]


def scale_to_unit(array: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Scale to float32 in [0, 1]: uint8 by 1/255 exactly, other types by their range."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype == bool:
        return array.astype(np.float32)
    a = array.astype(np.float32)
    if lo is None or hi is None:
        lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros_like(a, dtype=np.float32)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def finite_or_fail(array: np.ndarray, notes: list[str], what: str) -> np.ndarray:
    """Replace NaN/inf by the lowest finite value (and say so); fail if nothing is finite."""
    if not np.issubdtype(array.dtype, np.floating):
        return array
    finite = np.isfinite(array)
    if finite.all():
        return array
    if not finite.any():
        raise UnreadableImage(f"This {what} holds no valid pixel values (all are NaN or infinite).")
    bad = int((~finite).sum())
    notes.append(f"{bad} pixel(s) were NaN or infinite and are shown as background.")
    return np.where(finite, array, array[finite].min())


def check_size(shape: tuple[int, ...], what: str) -> None:
    """Refuse a slice too small to be a scan or too large to be one slice."""
    h, w = shape[-2], shape[-1]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise UnreadableImage(
            f"This {what} is only {w}x{h} pixels: too small to be a scan (at least {MIN_SIDE}x{MIN_SIDE})."
        )
    if h * w > MAX_SLICE_PIXELS:
        raise UnreadableImage(
            f"This {what} is {w}x{h} pixels, more than the {MAX_SLICE_PIXELS / 1e6:.0f} megapixels "
            "allowed for one slice. Export the slice at its native resolution."
        )


def drop_gray_channels(slices: np.ndarray) -> np.ndarray:
    """An RGB image whose three channels are equal is grayscale: keep one channel."""
    if slices.ndim == 4 and slices.shape[-1] == 3:
        if np.array_equal(slices[..., 0], slices[..., 1]) and np.array_equal(slices[..., 0], slices[..., 2]):
            return np.ascontiguousarray(slices[..., 0])
    return slices
