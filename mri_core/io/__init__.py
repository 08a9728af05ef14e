"""Reading every image format a clinician may drop: PNG/JPEG/TIFF/BMP, DICOM and NIfTI.

One function in front, ``read_image(data, filename)``: it names the format from the file's
first bytes (``detect_format``) and hands the bytes to that format's reader in ``READERS``, one
small reader per format behind it (the MONAI habit: ``raster``, ``dicom``, ``nifti``; several
files become one volume in ``volumes``). Everything happens in memory: uploads are never
written to disk.

Every reader returns an :class:`ImageStack` whose slices are float32 in [0, 1], shaped
(n, H, W) for grayscale or (n, H, W, 3) for colour. 8-bit files are scaled by 1/255 exactly,
so a JPEG read here gives the same array in training, evaluation and the app. Anything that
cannot be read raises :class:`UnreadableImage` with a message meant for a clinician.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from mri_core.io.base import (
    MAX_FILE_BYTES,
    MAX_FILE_MB,
    MAX_SLICE_PIXELS,
    MAX_TOTAL_VOXELS,
    MIN_SIDE,
    ImageStack,
    UnreadableImage,
)
from mri_core.io.dicom import PATIENT_FIELDS, dicom_affine, dicom_windows, read_dicom
from mri_core.io.nifti import is_nifti_header, read_nifti
from mri_core.io.optional import MissingPackage, require
from mri_core.io.raster import read_pil, read_tiff
from mri_core.io.volumes import join_slices, stack_series

__all__ = [
    "MAX_FILE_BYTES", "MAX_FILE_MB", "MAX_SLICE_PIXELS", "MAX_TOTAL_VOXELS", "MIN_SIDE", "NOT_AN_IMAGE",
    "PATIENT_FIELDS", "READERS", "REFUSALS", "ImageStack", "MissingPackage", "Reader", "UnreadableImage", "detect_format",
    "dicom_affine", "dicom_windows", "join_slices", "read_image", "read_images", "read_images_with_sources", "require",
    "stack_series",
]

Reader = Callable[[bytes], ImageStack]

# Format name (as ``detect_format`` gives it) -> the reader of that format's bytes.
READERS: dict[str, Reader] = {
    "png": partial(read_pil, fmt="png"),
    "jpeg": partial(read_pil, fmt="jpeg"),
    "bmp": partial(read_pil, fmt="bmp"),
    "gif": partial(read_pil, fmt="gif"),
    "webp": partial(read_pil, fmt="webp"),
    "tiff": read_tiff,
    "dicom": read_dicom,
    "dicom-maybe": partial(read_dicom, force=True),  # no preamble: read only if a DICOM header follows
    "nifti": read_nifti,
}

# Formats recognised but not read, with what to tell the user; any other format gets NOT_AN_IMAGE.
REFUSALS: dict[str, str] = {
    "pdf": "This is a PDF document, not an image. Export the slice as DICOM, NIfTI, PNG or JPEG.",
    "gzip": "This is a .gz archive that is not a NIfTI volume (name it .nii.gz if it is one).",
}
NOT_AN_IMAGE = "This file is not an image in any format the app reads (PNG, JPEG, TIFF, BMP, DICOM, NIfTI)."


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
    if is_nifti_header(head):
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


def read_image(data: bytes, filename: str = "") -> ImageStack:
    """Read one file's bytes into an :class:`ImageStack`; raise :class:`UnreadableImage` if not possible."""
    if data is None or len(data) == 0:
        raise UnreadableImage("The file is empty (0 bytes).")
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableImage(f"The file is {len(data) / 2**20:.0f} MB; the limit is {MAX_FILE_MB} MB.")
    fmt = detect_format(data, filename)
    reader = READERS.get(fmt)
    if reader is None:
        raise UnreadableImage(REFUSALS.get(fmt, NOT_AN_IMAGE))
    stack = reader(data)
    if stack.slices.size == 0:
        raise UnreadableImage("The file holds no pixels.")
    return stack


def _series_uid(stack: ImageStack) -> str | None:
    """The SeriesInstanceUID of a single-slice DICOM stack; None for anything else."""
    if stack.format == "dicom" and stack.n_slices == 1 and stack.dicom_sources:
        return str(stack.dicom_sources[0].get("SeriesInstanceUID", "")) or None
    return None


def _merge_series(members: list[tuple[int, str, ImageStack]]) -> tuple[str, ImageStack | UnreadableImage, tuple[int, ...]]:
    sources = tuple(m[0] for m in members)
    if len(members) == 1:
        return members[0][1], members[0][2], sources
    try:
        return (f"{members[0][1]} (+{len(members) - 1} more, one series)", stack_series([m[2] for m in members]), sources)
    except UnreadableImage as exc:
        return members[0][1], exc, sources


def read_images_with_sources(
        files: list[tuple[str, bytes]]) -> list[tuple[str, ImageStack | UnreadableImage, tuple[int, ...]]]:
    """Read several files; DICOM files of one series become one stack ordered by slice position.

    Returns (label, stack-or-error, indices of the files it was read from) in upload order, so one
    bad file never hides the rest, and a result is traced to its files by position, never by name
    (two files called ``slice.png`` from two folders are two scans).
    """
    results: list[tuple[str, ImageStack | UnreadableImage | None, tuple[int, ...]]] = []
    series: dict[str, list[tuple[int, str, ImageStack]]] = {}
    for i, (name, data) in enumerate(files):
        try:
            stack = read_image(data, name)
        except UnreadableImage as exc:
            results.append((name, exc, (i,)))
            continue
        uid = _series_uid(stack)
        if uid is None:
            results.append((name, stack, (i,)))
        else:
            if uid not in series:
                series[uid] = []
                results.append((uid, None, ()))  # placeholder keeps upload order
            series[uid].append((i, name, stack))
    merged = {uid: _merge_series(members) for uid, members in series.items()}
    return [merged[label] if value is None else (label, value, sources) for label, value, sources in results]


def read_images(files: list[tuple[str, bytes]]) -> list[tuple[str, ImageStack | UnreadableImage]]:
    """``read_images_with_sources`` without the sources: (label, stack-or-error) in upload order."""
    return [(label, result) for label, result, _ in read_images_with_sources(files)]
