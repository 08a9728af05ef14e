"""Reading every image format a clinician may drop: PNG/JPEG/TIFF/BMP, DICOM and NIfTI.

One function in front, ``read_image(data, filename)``, and one small reader per format behind
it (the MONAI habit). Everything happens in memory: uploads are never written to disk.

Every reader returns an :class:`ImageStack` whose slices are float32 in [0, 1], shaped
(n, H, W) for grayscale or (n, H, W, 3) for colour. 8-bit files are scaled by 1/255 exactly,
so a JPEG read here gives the same array in training, evaluation and the app. Anything that
cannot be read raises :class:`UnreadableImage` with a message meant for a clinician.
"""

from __future__ import annotations

import gzip
import io as _io
import re
import warnings
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

    @property
    def n_slices(self) -> int:
        return int(self.slices.shape[0])

    @property
    def is_color(self) -> bool:
        return self.slices.ndim == 4

    def slice(self, index: int) -> np.ndarray:
        return self.slices[index]


# --------------------------------------------------------------------------- helpers


def _scale_to_unit(array: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
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


def _finite_or_fail(array: np.ndarray, notes: list[str], what: str) -> np.ndarray:
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


def _check_size(shape: tuple[int, ...], what: str) -> None:
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


def _drop_gray_channels(slices: np.ndarray) -> np.ndarray:
    """An RGB image whose three channels are equal is grayscale: keep one channel."""
    if slices.ndim == 4 and slices.shape[-1] == 3:
        if np.array_equal(slices[..., 0], slices[..., 1]) and np.array_equal(slices[..., 0], slices[..., 2]):
            return np.ascontiguousarray(slices[..., 0])
    return slices


# --------------------------------------------------------------------------- sniffing


def _is_nifti_header(head: bytes) -> bool:
    return (len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00")) or (
        len(head) >= 540 and head[4:8] in (b"n+2\x00", b"ni2\x00")
    )


def detect_format(data: bytes, filename: str) -> str:
    """Name the format from the file's first bytes, falling back to its extension."""
    head = data[:1024]
    name = filename.lower()
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"  # first: a DICOM preamble may itself look like a TIFF header
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith(b"\x1f\x8b"):
        return "nifti" if name.endswith((".nii.gz", ".nii", ".gz")) else "gzip"
    if _is_nifti_header(head):
        return "nifti"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if name.endswith((".dcm", ".dicom", ".ima")) or "." not in name.rsplit("/", 1)[-1]:
        return "dicom-maybe"  # DICOM without its 128-byte preamble (older scanners, PACS dumps)
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    return "unknown"


# --------------------------------------------------------------------------- readers


def _read_pil(data: bytes, fmt: str) -> ImageStack:
    from PIL import Image, ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a cut-off file must fail, not be padded with grey
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(_io.BytesIO(data))
            w, h = im.size
            _check_size((h, w), "image")
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                notes.append(f"The file has {frames} frames; the first is shown.")
            im.load()
    except UnreadableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnreadableImage("This image declares more pixels than it can hold (a decompression bomb); it was not opened.") from None
    except OSError as exc:
        msg = str(exc).lower()
        if "truncated" in msg or "broken" in msg or "premature" in msg:
            raise UnreadableImage(f"This {fmt.upper()} file is cut off (truncated): the download or export did not finish.") from None
        # PIL's own text names an in-memory buffer ("<_io.BytesIO object at 0x...>"): say it plainly.
        raise UnreadableImage(f"This {fmt.upper()} file is damaged and cannot be decoded.") from None
    except Exception as exc:  # PIL raises many types on corrupt data
        raise UnreadableImage(f"This {fmt.upper()} file is damaged and cannot be decoded ({type(exc).__name__}).") from None

    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.array(im)
        arr = _finite_or_fail(arr, notes, "image")
        arr = _scale_to_unit(arr)
    elif mode in ("L", "RGB"):
        arr = _scale_to_unit(np.asarray(im, dtype=np.uint8))
    elif mode == "LA":
        arr = _scale_to_unit(np.asarray(im.convert("L"), dtype=np.uint8))
    else:  # P, RGBA, CMYK, YCbCr, 1, ...
        arr = _scale_to_unit(np.asarray(im.convert("RGB"), dtype=np.uint8))
    slices = _drop_gray_channels(arr[None])
    return ImageStack(slices=np.ascontiguousarray(slices, dtype=np.float32), format=fmt, notes=notes)


def _read_tiff(data: bytes) -> ImageStack:
    import tifffile

    notes: list[str] = []
    try:
        with tifffile.TiffFile(_io.BytesIO(data)) as tif:
            series = tif.series[0]
            shape = tuple(series.shape)
            if len(shape) < 2:
                raise UnreadableImage("This TIFF file holds no two-dimensional image.")
            color = shape[-1] in (3, 4) and len(shape) >= 3
            plane = shape[-3:-1] if color else shape[-2:]
            _check_size(plane, "TIFF image")
            if int(np.prod(shape)) > MAX_TOTAL_VOXELS * (4 if color else 1):
                raise UnreadableImage("This TIFF holds more pixels than the app accepts in one file.")
            arr = series.asarray()
    except UnreadableImage:
        raise
    except Exception as exc:
        raise UnreadableImage(f"This TIFF file is damaged or uses an unsupported layout ({type(exc).__name__}: {exc}).") from None

    color = arr.ndim >= 3 and arr.shape[-1] in (3, 4)
    if color:
        arr = arr[..., :3]
        arr = arr.reshape((-1,) + arr.shape[-3:])
    else:
        arr = arr.reshape((-1,) + arr.shape[-2:])
    arr = _finite_or_fail(arr, notes, "TIFF image")
    arr = _scale_to_unit(arr)  # 8-bit by 1/255; 16-bit and float scans stretched to their own range
    return ImageStack(slices=_drop_gray_channels(arr), format="tiff", notes=notes)


def _dicom_dataset(data: bytes, force: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(_io.BytesIO(data), force=force)
    except InvalidDicomError:
        raise UnreadableImage("This file is not a DICOM file (no DICOM header found).") from None
    except Exception as exc:
        raise UnreadableImage(f"This DICOM file is damaged or cut off ({type(exc).__name__}).") from None


def _dicom_pixels(ds) -> tuple[np.ndarray, list[str]]:
    """Decode, apply rescale slope/intercept and the window, invert MONOCHROME1; to [0, 1]."""
    from pydicom.pixels import apply_modality_lut

    notes: list[str] = []
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise UnreadableImage(
            "This DICOM file holds no image (it may be a report, a structured document or a presentation state)."
        )
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    _check_size((rows, cols), "DICOM image")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if rows * cols * frames > MAX_TOTAL_VOXELS:
        raise UnreadableImage("This DICOM file holds more pixels than the app accepts in one file.")
    try:
        arr = ds.pixel_array
    except Exception as exc:
        tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(tsyntax, "name", str(tsyntax)) if tsyntax else "unknown"
        text = str(exc)
        if "plugin" in text.lower() or "decod" in text.lower() or "handler" in text.lower():
            raise UnreadableImage(f"The pixels of this DICOM file use a compression ({name}) that could not be decoded.") from None
        raise UnreadableImage(f"The pixels of this DICOM file cannot be decoded: the file is damaged or cut off ({name}).") from None

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
        f = _finite_or_fail(f, notes, "DICOM image")
        if window is not None:
            center, width = window
            f = _scale_to_unit(f, center - width / 2, center + width / 2)
        else:
            f = _scale_to_unit(f)
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


def _dicom_spacing(ds) -> tuple[float, float] | None:
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        if key in ds:
            try:
                r, c = (float(v) for v in ds[key].value[:2])
                if r > 0 and c > 0:
                    return (r, c)
            except Exception:
                pass
    return None


def _slice_position(ds) -> float | None:
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


def _read_dicom(data: bytes, force: bool = False) -> ImageStack:
    ds = _dicom_dataset(data, force)
    if force and "PixelData" not in ds and "SOPClassUID" not in ds and "Rows" not in ds:
        raise UnreadableImage("This file is not an image in any format the app reads (PNG, JPEG, TIFF, BMP, DICOM, NIfTI).")
    slices, notes = _dicom_pixels(ds)
    thickness = None
    for key in ("SpacingBetweenSlices", "SliceThickness"):
        if key in ds:
            try:
                thickness = float(ds[key].value)
                break
            except Exception:
                pass
    if slices.shape[0] > 1:
        notes.append(f"Multi-frame DICOM with {slices.shape[0]} frames.")
    if "PixelData" in ds:
        del ds.PixelData  # keep only the header for the SEG export; the pixels live in `slices`
    spacing = _dicom_spacing(ds)
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
    )


def _nifti_declared_bytes(head: bytes) -> int | None:
    """Bytes a NIfTI header says its file holds (header, extensions, voxels); None if unsure."""
    import nibabel as nib

    if not _is_nifti_header(head):
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


def _gunzip_limited(data: bytes, limit: int) -> bytes:
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


def _read_nifti(data: bytes) -> ImageStack:
    import nibabel as nib

    if data[:2] == b"\x1f\x8b":
        data = _gunzip_limited(data, MAX_TOTAL_VOXELS * 8 + 1024)
        if not _is_nifti_header(data[:1024]):
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
    shape = img.shape
    notes: list[str] = []
    if len(shape) < 3:
        raise UnreadableImage("This NIfTI file is not a volume (fewer than 3 dimensions).")
    if int(np.prod(shape[:3])) > MAX_TOTAL_VOXELS:
        raise UnreadableImage("This NIfTI volume holds more voxels than the app accepts.")
    try:
        canonical = nib.as_closest_canonical(img if len(shape) == 3 else img.slicer[..., 0])
        vol = np.asarray(canonical.dataobj, dtype=np.float32)
    except Exception as exc:
        raise UnreadableImage(f"The voxels of this NIfTI file cannot be read: the file is cut off or damaged ({type(exc).__name__}).") from None
    if len(shape) > 3:
        notes.append(f"4-D NIfTI with {int(np.prod(shape[3:]))} volumes: showing the first one.")
    while vol.ndim > 3:
        vol = vol[..., 0]
    _check_size(vol.shape[:2][::-1], "NIfTI slice")
    vol = _finite_or_fail(vol, notes, "NIfTI volume")
    # Robust range: MRI intensities have long bright tails.
    lo, hi = np.percentile(vol, [0.5, 99.5]) if vol.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = float(vol.min()), float(vol.max())
    vol = _scale_to_unit(vol, float(lo), float(hi))
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


def read_image(data: bytes, filename: str = "") -> ImageStack:
    """Read one file's bytes into an :class:`ImageStack`; raise :class:`UnreadableImage` if not possible."""
    if data is None or len(data) == 0:
        raise UnreadableImage("The file is empty (0 bytes).")
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableImage(f"The file is {len(data) / 2**20:.0f} MB; the limit is {MAX_FILE_MB} MB.")
    fmt = detect_format(data, filename)
    if fmt in ("png", "jpeg", "bmp", "gif", "webp"):
        stack = _read_pil(data, fmt)
    elif fmt == "tiff":
        stack = _read_tiff(data)
    elif fmt == "dicom":
        stack = _read_dicom(data)
    elif fmt == "dicom-maybe":
        stack = _read_dicom(data, force=True)
    elif fmt == "nifti":
        stack = _read_nifti(data)
    elif fmt == "pdf":
        raise UnreadableImage("This is a PDF document, not an image. Export the slice as DICOM, NIfTI, PNG or JPEG.")
    elif fmt == "gzip":
        raise UnreadableImage("This is a .gz archive that is not a NIfTI volume (name it .nii.gz if it is one).")
    else:
        raise UnreadableImage(
            "This file is not an image in any format the app reads (PNG, JPEG, TIFF, BMP, DICOM, NIfTI)."
        )
    if stack.slices.size == 0:
        raise UnreadableImage("The file holds no pixels.")
    return stack


def read_images(files: list[tuple[str, bytes]]) -> list[tuple[str, ImageStack | UnreadableImage]]:
    """Read several files; DICOM files of one series become one stack ordered by slice position.

    Returns (label, stack-or-error) pairs in upload order, so one bad file never hides the rest.
    """
    results: list[tuple[str, ImageStack | UnreadableImage]] = []
    series: dict[str, list[tuple[str, ImageStack]]] = {}
    order: list[str] = []
    for name, data in files:
        try:
            stack = read_image(data, name)
        except UnreadableImage as exc:
            results.append((name, exc))
            continue
        uid = None
        if stack.format == "dicom" and stack.n_slices == 1 and stack.dicom_sources:
            uid = str(stack.dicom_sources[0].get("SeriesInstanceUID", "")) or None
        if uid is None:
            results.append((name, stack))
        else:
            if uid not in series:
                series[uid] = []
                order.append(uid)
                results.append((uid, None))  # placeholder keeps upload order
            series[uid].append((name, stack))
    merged: dict[str, tuple[str, ImageStack | UnreadableImage]] = {}
    for uid in order:
        members = series[uid]
        if len(members) == 1:
            merged[uid] = members[0]
            continue
        try:
            merged[uid] = (f"{members[0][0]} (+{len(members) - 1} more, one series)", stack_series([m[1] for m in members]))
        except UnreadableImage as exc:
            merged[uid] = (members[0][0], exc)
    return [merged[label] if value is None else (label, value) for label, value in results]


def stack_series(stacks: list[ImageStack]) -> ImageStack:
    """Join single-slice DICOM stacks of one series, ordered by position along the slice normal."""
    shapes = {s.slices.shape[1:] for s in stacks}
    if len(shapes) != 1:
        raise UnreadableImage("The DICOM files of this series have different image sizes and cannot be stacked.")

    def key(s: ImageStack):
        ds = s.dicom_sources[0]
        pos = _slice_position(ds)
        return (0, pos) if pos is not None else (1, float(ds.get("InstanceNumber", 0) or 0))

    ordered = sorted(stacks, key=key)
    positions = [_slice_position(s.dicom_sources[0]) for s in ordered]
    thickness = ordered[0].slice_thickness_mm
    if all(p is not None for p in positions) and len(positions) > 1:
        gaps = np.diff(positions)
        if np.all(gaps > 0):
            thickness = float(np.median(gaps))
    notes = sorted({n for s in ordered for n in s.notes})
    sources = [s.dicom_sources[0] for s in ordered]
    placed = all(p is not None for p in positions)
    return ImageStack(
        slices=np.concatenate([s.slices for s in ordered]),
        format="dicom",
        modality=ordered[0].modality,
        spacing_mm=ordered[0].spacing_mm,
        slice_thickness_mm=thickness,
        notes=[f"DICOM series of {len(ordered)} files, ordered by slice position."] + notes,
        patient=ordered[0].patient,
        affine=dicom_affine(sources, ordered[0].slices.shape[1:3], ordered[0].spacing_mm, thickness) if placed else None,
        dicom_sources=sources,
        windows=ordered[0].windows,
    )


def _name_order(name: str) -> tuple:
    """Natural order of file names: ``p_2.jpg`` before ``p_10.jpg``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name))


def join_slices(named: list[tuple[str, ImageStack]]) -> ImageStack:
    """One volume from single-slice files of one scan (e.g. a patient's exported JPEG slices),
    ordered by file name as numbered exports are; UnreadableImage if they cannot be one volume."""
    if len(named) < 2:
        raise UnreadableImage("Joining into a volume needs at least two slices.")
    if any(s.n_slices != 1 for _, s in named):
        raise UnreadableImage("Only single-slice files can be joined; a file here already holds a stack.")
    ordered = sorted(named, key=lambda item: _name_order(item[0]))
    shapes = {s.slices.shape[1:] for _, s in ordered}
    if len(shapes) != 1:
        raise UnreadableImage("These slices differ in size or in colour, so they are not one volume.")
    first = ordered[0][1]
    spacings = {s.spacing_mm for _, s in ordered}
    return ImageStack(
        slices=np.concatenate([s.slices for _, s in ordered]),
        format=first.format,
        modality=first.modality,
        spacing_mm=first.spacing_mm if len(spacings) == 1 else None,
        slice_thickness_mm=None,
        notes=[f"{len(ordered)} files joined into one volume, ordered by file name "
               f"({ordered[0][0]} … {ordered[-1][0]}); the distance between slices is unknown."],
    )
