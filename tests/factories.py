"""Small synthetic inputs for the tests: DICOM, NIfTI and image bytes made in memory."""

from __future__ import annotations

import io

import numpy as np


def phantom(h: int = 96, w: int = 96, seed: int = 0) -> np.ndarray:
    """A head-like phantom in [0, 1]: bright ellipse on black, with a brighter blob (a 'lesion')."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    head = ((yy - h / 2) / (h * 0.38)) ** 2 + ((xx - w / 2) / (w * 0.32)) ** 2 <= 1
    img = np.where(head, 0.5, 0.0) + rng.normal(0, 0.02, (h, w))
    blob = ((yy - h * 0.4) ** 2 + (xx - w * 0.55) ** 2) <= (min(h, w) * 0.08) ** 2
    img[blob] = 0.9
    return np.clip(img, 0, 1).astype(np.float32)


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def encode(array: np.ndarray, fmt: str, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kw)
    return buf.getvalue()


def dicom_bytes(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    spacing: tuple[float, float] | None = (0.5, 0.5),
    position: tuple[float, float, float] | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    instance: int = 1,
    modality: str = "MR",
    patient_name: str = "Doe^Jane",
    with_pixels: bool = True,
    preamble: bool = True,
) -> bytes:
    """An uncompressed DICOM file; 2-D gray, (frames, H, W) multi-frame, or (H, W, 3) RGB."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    pixels = np.asarray(pixels)
    rgb = pixels.ndim == 3 and pixels.shape[-1] == 3
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.FrameOfReferenceUID = frame_of_reference_uid or generate_uid()
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = "ID-12345"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = "20260101"
    ds.InstanceNumber = instance
    ds.Rows, ds.Columns = (pixels.shape[0], pixels.shape[1]) if (pixels.ndim == 2 or rgb) else pixels.shape[1:3]
    if pixels.ndim == 3 and not rgb:
        ds.NumberOfFrames = pixels.shape[0]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else photometric
    if rgb:
        ds.PlanarConfiguration = 0
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if spacing is not None:
        ds.PixelSpacing = list(spacing)
        ds.SliceThickness = 5.0
    if position is not None:
        ds.ImagePositionPatient = list(position)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    if with_pixels:
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=preamble, implicit_vr=False, little_endian=True)
    return buf.getvalue()


def nifti_bytes(volume: np.ndarray, zooms=(1.0, 1.0, 2.0), gz: bool = False, affine: np.ndarray | None = None) -> bytes:
    import gzip

    import nibabel as nib

    aff = np.diag(list(zooms) + [1.0]) if affine is None else affine
    img = nib.Nifti1Image(volume, aff)
    img.header.set_zooms(tuple(zooms) + tuple([1.0] * (volume.ndim - 3)))
    data = img.to_bytes()
    return gzip.compress(data) if gz else data


NON_BRAIN_DICOM = {  # pydicom's own example files that are not brain MRI
    "ct_small": "CT_small.dcm",  # a CT slice
    "ct_512": "693_J2KI.dcm",  # another CT, JPEG 2000
    "bone_scan": "JPEG2000.dcm",  # a whole-body nuclear-medicine film
    "ultrasound": "examples_palette.dcm",
    "colour_pattern": "SC_rgb_jpeg.dcm",
}


def non_brain_images() -> dict[str, tuple[np.ndarray, str]]:
    """Slices that are not brain MRI, with the modality their file gives ("unknown" for pictures):
    synthetic pictures and pydicom's CT, film and ultrasound files, read through the app's reader."""
    from pydicom.data import get_testdata_file

    from mri_core.io import read_image

    h = w = 192
    yy, xx = np.mgrid[0:h, 0:w] / float(h)
    pictures = {
        "colour_gradient": np.dstack([yy, xx, 1 - yy]).astype(np.float32),
        "noise": np.random.default_rng(0).random((h, w)).astype(np.float32),
        "checkerboard": ((np.floor(yy * 8) + np.floor(xx * 8)) % 2).astype(np.float32),
        "grey_ramp": xx.astype(np.float32),
    }
    out = {name: (image, "unknown") for name, image in pictures.items()}
    for name, file in NON_BRAIN_DICOM.items():
        path = get_testdata_file(file)
        with open(path, "rb") as f:
            stack = read_image(f.read(), file)
        out[name] = (stack.slice(stack.n_slices // 2), stack.modality)
    return out
