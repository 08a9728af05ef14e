"""NIfTI-1 and NIfTI-2 (.nii, .nii.gz) through nibabel, as axial slices in radiological
orientation; a gzip that would inflate past what its header declares is refused early."""

from __future__ import annotations

import gzip
import io as _io
import warnings

import numpy as np

from mri_core.io.base import (
    MAX_TOTAL_VOXELS,
    ImageStack,
    UnreadableImage,
    check_size,
    finite_or_fail,
    scale_to_unit,
)
from mri_core.io.optional import require


def is_nifti_header(head: bytes) -> bool:
    """Whether the first bytes carry a NIfTI-1 or NIfTI-2 magic string."""
    return (len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00")) or (
        len(head) >= 540 and head[4:8] in (b"n+2\x00", b"ni2\x00")
    )


def _nifti_declared_bytes(head: bytes) -> int | None:
    """Bytes a NIfTI header says its file holds (header, extensions, voxels); None if unsure."""
    nib = require("nibabel")

    if not is_nifti_header(head):
        return None
    cls = nib.Nifti1Header if head[344:348] in (b"n+1\x00", b"ni1\x00") else nib.Nifti2Header
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdr = cls.from_fileobj(_io.BytesIO(head), check=False)
            shape = hdr.get_data_shape()
            itemsize = hdr.get_data_dtype().itemsize
            offset = int(hdr.get_data_offset())
    except Exception:
        return None
    if not shape or any(d < 0 for d in shape) or itemsize <= 0:
        return None
    return max(offset, 0) + int(np.prod([int(d) for d in shape], dtype=object)) * itemsize


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """gunzip that refuses to inflate past `limit` bytes (a gzip bomb stays small on disk).

    A NIfTI header in the first bytes tightens the limit to the size it declares (plus 1 MB),
    so a small volume followed by a flood of zeros is refused early, not after `limit` bytes.
    """
    out = _io.BytesIO()
    try:
        with gzip.GzipFile(fileobj=_io.BytesIO(data)) as gz:
            while True:
                chunk = gz.read(1 << 20)
                if not chunk:
                    break
                if out.tell() == 0:
                    declared = _nifti_declared_bytes(chunk[:1024])
                    if declared is not None:
                        if declared > limit:
                            raise UnreadableImage("This NIfTI volume holds more voxels than the app accepts.")
                        limit = min(limit, declared + (1 << 20))
                out.write(chunk)
                if out.tell() > limit:
                    raise UnreadableImage("This compressed file inflates to more data than the app accepts.")
    except UnreadableImage:
        raise
    except (OSError, EOFError) as exc:
        raise UnreadableImage(f"This .gz file is damaged or cut off ({exc}).") from None
    return out.getvalue()


def _nifti_image(data: bytes):
    """The nibabel image of (possibly gzipped) NIfTI bytes, checked to be a volume of allowed size."""
    nib = require("nibabel")

    if data[:2] == b"\x1f\x8b":
        data = gunzip_limited(data, MAX_TOTAL_VOXELS * 8 + 1024)
        if not is_nifti_header(data[:1024]):
            raise UnreadableImage("This compressed file does not hold a NIfTI volume.")
    img = None
    for cls in (nib.Nifti1Image, nib.Nifti2Image):
        try:
            img = cls.from_bytes(data)
            break
        except Exception:
            continue
    if img is None:
        raise UnreadableImage("This NIfTI file is damaged or cut off: its header could not be read.")
    if len(img.shape) < 3:
        raise UnreadableImage("This NIfTI file is not a volume (fewer than 3 dimensions).")
    if int(np.prod(img.shape[:3])) > MAX_TOTAL_VOXELS:
        raise UnreadableImage("This NIfTI volume holds more voxels than the app accepts.")
    return img


def _canonical_volume(img, notes: list[str]):
    """(RAS+ canonical image, its first 3-D volume as float32 in [0, 1])."""
    nib = require("nibabel")

    shape = img.shape
    try:
        canonical = nib.as_closest_canonical(img if len(shape) == 3 else img.slicer[..., 0])
        vol = np.asarray(canonical.dataobj, dtype=np.float32)
    except Exception as exc:
        raise UnreadableImage(f"The voxels of this NIfTI file cannot be read: the file is cut off or damaged ({type(exc).__name__}).") from None
    if len(shape) > 3:
        notes.append(f"4-D NIfTI with {int(np.prod(shape[3:]))} volumes: showing the first one.")
    while vol.ndim > 3:
        vol = vol[..., 0]
    check_size(vol.shape[:2][::-1], "NIfTI slice")
    vol = finite_or_fail(vol, notes, "NIfTI volume")
    # Robust range: MRI intensities have long bright tails.
    lo, hi = np.percentile(vol, [0.5, 99.5]) if vol.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = float(vol.min()), float(vol.max())
    return canonical, scale_to_unit(vol, float(lo), float(hi))


def read_nifti(data: bytes) -> ImageStack:
    """A NIfTI volume's axial slices: anterior at the top, the patient's right on the left."""
    notes: list[str] = []
    canonical, vol = _canonical_volume(_nifti_image(data), notes)
    # RAS+ array (x: left->Right, y: posterior->Anterior, z: inferior->Superior) to axial
    # slices in radiological orientation: anterior at the top, the patient's right on the left.
    slices = np.ascontiguousarray(np.transpose(vol[::-1, ::-1, :], (2, 1, 0)))
    zooms = [float(z) for z in canonical.header.get_zooms()[:3]]
    spacing = (zooms[1], zooms[0]) if zooms[0] > 0 and zooms[1] > 0 else None
    return ImageStack(
        slices=slices.astype(np.float32),
        format="nifti",
        modality="MR",
        spacing_mm=spacing,
        slice_thickness_mm=zooms[2] if zooms[2] > 0 else None,
        notes=notes,
        affine=canonical.affine.copy(),
    )
