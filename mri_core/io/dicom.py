"""DICOM through pydicom: pixels with rescale, window and MONOCHROME1 applied, the display windows
the file names, pixel spacing, the voxel-to-world affine and the patient fields.

``read_dicom`` is the boundary: whatever pydicom or a malformed header value raises while a file
is read becomes :class:`UnreadableImage`, so no DICOM file can reach the user as a traceback.
"""

from __future__ import annotations

import io as _io

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

# DICOM attributes that identify a person: read so that the app can show them on request,
# never copied into an export.
PATIENT_FIELDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyDate",
    "InstitutionName",
    "ReferringPhysicianName",
    "AccessionNumber",
)


def _dicom_dataset(data: bytes, force: bool):
    pydicom = require("pydicom")
    InvalidDicomError = require("pydicom.errors", "pydicom").InvalidDicomError

    try:
        return pydicom.dcmread(_io.BytesIO(data), force=force)
    except InvalidDicomError:
        raise UnreadableImage("This file is not a DICOM file (no DICOM header found).") from None
    except Exception as exc:
        raise UnreadableImage(f"This DICOM file is damaged or cut off ({type(exc).__name__}).") from None


def _decoded_array(ds) -> np.ndarray:
    """``ds.pixel_array`` after the size checks, with decoding failures said in plain words."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise UnreadableImage(
            "This DICOM file holds no image (it may be a report, a structured document or a presentation state)."
        )
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    check_size((rows, cols), "DICOM image")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if rows * cols * frames > MAX_TOTAL_VOXELS:
        raise UnreadableImage("This DICOM file holds more pixels than the app accepts in one file.")
    try:
        return ds.pixel_array
    except Exception as exc:
        tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(tsyntax, "name", str(tsyntax)) if tsyntax else "unknown"
        text = str(exc)
        if "plugin" in text.lower() or "decod" in text.lower() or "handler" in text.lower():
            raise UnreadableImage(f"The pixels of this DICOM file use a compression ({name}) that could not be decoded.") from None
        raise UnreadableImage(f"The pixels of this DICOM file cannot be decoded: the file is damaged or cut off ({name}).") from None


def _dicom_pixels(ds) -> tuple[np.ndarray, list[str]]:
    """Decode, apply rescale slope/intercept and the window, invert MONOCHROME1; to [0, 1]."""
    apply_modality_lut = require("pydicom.pixels", "pydicom").apply_modality_lut

    notes: list[str] = []
    arr = _decoded_array(ds)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples > 1:
        # Colour DICOM (secondary capture, screenshots): pydicom gives RGB; scale by bit depth.
        bits = int(ds.get("BitsStored", 8) or 8)
        arr = arr.astype(np.float32) / float(2**bits - 1)
        arr = arr.reshape((-1,) + arr.shape[-3:])
        notes.append("This is a colour DICOM (often a screenshot or secondary capture), not a raw scan.")
        return np.clip(arr, 0, 1).astype(np.float32), notes

    arr = arr.reshape((-1,) + arr.shape[-2:])
    out = []
    window = _dicom_window(ds)
    for frame in arr:
        f = apply_modality_lut(frame, ds).astype(np.float32)
        f = finite_or_fail(f, notes, "DICOM image")
        if window is not None:
            center, width = window
            f = scale_to_unit(f, center - width / 2, center + width / 2)
        else:
            f = scale_to_unit(f)
        if photometric == "MONOCHROME1":
            f = 1.0 - f  # MONOCHROME1: low values are white
        out.append(f)
    if photometric == "MONOCHROME1":
        notes.append("MONOCHROME1 image: grey levels were inverted for display.")
    return np.stack(out).astype(np.float32), notes


def _dicom_window(ds) -> tuple[float, float] | None:
    """The first window (centre, width) the file carries, in rescaled units; None if absent."""
    try:
        center = float(np.atleast_1d(ds.WindowCenter)[0])
        width = float(np.atleast_1d(ds.WindowWidth)[0])
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    return (center, width) if width > 1 else None


def _value_range(ds) -> tuple[float, float] | None:
    """The scanner values (rescaled) the slices' 0 and 1 stand for: the ends of the first window
    (swapped for MONOCHROME1, whose grey levels were inverted); None without a window (each frame
    was then stretched over its own range)."""
    window = _dicom_window(ds)
    if window is None:
        return None
    lo, hi = window[0] - window[1] / 2, window[0] + window[1] / 2
    return (hi, lo) if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1" else (lo, hi)


def dicom_windows(ds) -> list[tuple[str, float, float]]:
    """Every window the file carries, as (name, level, width) in the [0, 1] units of the slices
    the reader made with the first window; [] when the file has none."""
    first = _dicom_window(ds)
    if first is None:
        return []
    lo, span = first[0] - first[1] / 2, first[1]
    centres = np.atleast_1d(ds.WindowCenter)
    widths = np.atleast_1d(ds.WindowWidth)
    names = list(np.atleast_1d(ds.get("WindowCenterWidthExplanation", []) or []))
    inverted = str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"
    out = []
    for i, (c, w) in enumerate(zip(centres, widths)):
        try:
            level, width = (float(c) - lo) / span, float(w) / span
        except (TypeError, ValueError):
            continue
        if width > 0:
            out.append((str(names[i]) if i < len(names) and str(names[i]).strip() else f"window {i + 1}",
                        1.0 - level if inverted else level, width))
    return out


def _dicom_patient(ds) -> dict[str, str]:
    return {k: str(ds.get(k, "")) for k in PATIENT_FIELDS if str(ds.get(k, "")).strip()}


def _header_value(ds, key: str):
    """A header field's value, or its raw text where pydicom cannot convert it (a damaged DS field)."""
    try:
        return ds[key].value
    except (TypeError, ValueError):
        raw = ds.get_item(key).value
        return raw.decode("latin-1", "replace") if isinstance(raw, bytes) else raw


def _dicom_spacing(ds, notes: list[str]) -> tuple[float, float] | None:
    """The pixel spacing in mm (rows, columns), or None; a value present but unusable is said in ``notes``."""
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        if key in ds:
            value = _header_value(ds, key)
            try:
                r, c = (float(v) for v in (value.split("\\") if isinstance(value, str) else value)[:2])
            except (TypeError, ValueError):
                notes.append(f"The file's {key} ({_shown(value)}) is not two numbers: sizes are in pixels.")
                continue
            if r > 0 and c > 0:
                return (r, c)
            notes.append(f"The file's {key} ({r:g}, {c:g}) is not a positive size: sizes are in pixels.")
    return None


def _dicom_thickness(ds, notes: list[str]) -> float | None:
    """The distance between slices in mm, or None; a value present but unusable is said in ``notes``."""
    for key in ("SpacingBetweenSlices", "SliceThickness"):
        value = _header_value(ds, key) if key in ds else None
        if value not in (None, ""):
            try:
                return float(value)
            except (TypeError, ValueError):
                notes.append(f"The file's {key} ({_shown(value)}) is not a number: volumes are not measured from it.")
    return None


def _shown(value) -> str:
    """A header value as a note quotes it: short, so a damaged field cannot flood the page."""
    text = "\\".join(str(v) for v in value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else str(value)
    return text if len(text) <= 24 else text[:21] + "..."


def slice_position(ds) -> float | None:
    """Position along the slice normal, from ImagePositionPatient and ImageOrientationPatient."""
    try:
        iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
        ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        return float(np.dot(normal, ipp))
    except Exception:
        return None


def dicom_affine(sources: list, shape_hw: tuple[int, int], spacing_mm: tuple[float, float] | None,
                 thickness_mm: float | None = None) -> np.ndarray | None:
    """Voxel -> RAS mm for masks exported from DICOM slices, as a standard DICOM-to-NIfTI
    conversion places them; None when the files do not say where they lie.

    The export's voxel (i, j, k) is column W-1-i, row H-1-j of slice k (``export.mask_nifti``
    undoes the reader's radiological layout). DICOM puts pixel (row r, column c) of a slice at
    ImagePositionPatient + c * column spacing * X + r * row spacing * Y (X, Y the two directions of
    ImageOrientationPatient), in LPS; RAS flips the first two axes. Slices follow the step from
    the first slice's position to the last's (one slice: the normal times the thickness)."""
    try:
        iop = np.asarray(sources[0].ImageOrientationPatient, float)
        first = np.asarray(sources[0].ImagePositionPatient, float)
        last = np.asarray(sources[-1].ImagePositionPatient, float)
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    if spacing_mm is None or iop.shape != (6,) or first.shape != (3,):
        return None
    x, y = iop[:3], iop[3:]
    row_mm, col_mm = (float(v) for v in spacing_mm)
    h, w = shape_hw
    step = (last - first) / (len(sources) - 1) if len(sources) > 1 else np.cross(x, y) * float(thickness_mm or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = -col_mm * x
    lps[:3, 1] = -row_mm * y
    lps[:3, 2] = step
    lps[:3, 3] = first + (w - 1) * col_mm * x + (h - 1) * row_mm * y
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _dicom_stack(data: bytes, force: bool) -> ImageStack:
    ds = _dicom_dataset(data, force)
    if force and "PixelData" not in ds and "SOPClassUID" not in ds and "Rows" not in ds:
        raise UnreadableImage("This file is not an image in any format the app reads (PNG, JPEG, TIFF, BMP, DICOM, NIfTI).")
    slices, notes = _dicom_pixels(ds)
    thickness = _dicom_thickness(ds, notes)
    if slices.shape[0] > 1:
        notes.append(f"Multi-frame DICOM with {slices.shape[0]} frames.")
    if "PixelData" in ds:
        del ds.PixelData  # keep only the header for the SEG export; the pixels live in `slices`
    spacing = _dicom_spacing(ds, notes)
    return ImageStack(
        slices=slices,
        format="dicom",
        modality=str(ds.get("Modality", "unknown")),
        spacing_mm=spacing,
        slice_thickness_mm=thickness,
        notes=notes,
        patient=_dicom_patient(ds),
        # One frame: its own geometry. Several frames in one file keep theirs per frame: not read here.
        affine=dicom_affine([ds], slices.shape[1:3], spacing, thickness) if slices.shape[0] == 1 else None,
        dicom_sources=[ds],
        windows=dicom_windows(ds) if slices.ndim == 3 else [],
        value_range=_value_range(ds) if slices.ndim == 3 else None,
    )


def read_dicom(data: bytes, force: bool = False) -> ImageStack:
    """One DICOM file (``force``: one without its preamble) as a stack of its frames."""
    try:
        return _dicom_stack(data, force)
    except (UnreadableImage, ImportError):
        raise
    except Exception as exc:  # a header value of the wrong kind (badVR.dcm's IS "1A"), a broken element
        raise UnreadableImage(
            f"This DICOM file has a damaged or non-standard header and cannot be read ({type(exc).__name__})."
        ) from None
