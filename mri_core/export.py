"""Taking a result out of the app: the mask as PNG, NIfTI or DICOM SEG, and a short text report.

A mask is only useful outside the app if another tool puts it back on the right voxels, so
each format keeps the geometry of the image it was drawn on: the NIfTI mask shares the
voxel grid and affine of the NIfTI it came from, and the DICOM SEG references the exact
source instances (and frames). Exports are shared more freely than scans, so none of them
carries a patient identifier: the NIfTI header is new, and the SEG is built from copies of
the source headers that hold only geometry and UIDs.
"""

from __future__ import annotations

import copy
import gzip
import io

import numpy as np

from .display import DISCLAIMER, measurement_rows
from .io import PATIENT_FIELDS, ImageStack, require


# What highdicom needs from a source header to describe and reference its frames: identity
# (UIDs), pixel layout and geometry. Nothing else is copied, so no personal data (names,
# dates, institution, other IDs, private tags) can reach the SEG through highdicom's
# copying of the patient, study and equipment modules.
_SEG_SOURCE_KEYWORDS = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "Modality",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
    "DimensionOrganizationType",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
)

# Type 2 attributes of the patient and study modules: a valid SEG must have them, so they
# are present but empty. highdicom also reads them from the source, so the copies carry
# them empty too.
_EMPTY_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)

# Identifying attributes that must not be in an export at all (a second line of defence:
# the source copies never hold them).
_REMOVE = tuple(k for k in PATIENT_FIELDS if k not in _EMPTY_TYPE2) + (
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "IssuerOfPatientID",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientComments",
    "PatientWeight",
    "PatientSize",
    "EthnicGroup",
    "MilitaryRank",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "OperatorsName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "StudyDescription",
    "AdmittingDiagnosesDescription",
    "ContentCreatorName",
)


def _check_masks(masks: np.ndarray, stack: ImageStack) -> np.ndarray:
    masks = np.asarray(masks)
    expected = tuple(stack.slices.shape[:3])
    if masks.shape != expected:
        raise ValueError(f"The masks are shaped {masks.shape} but the image stack is {expected} (slices, rows, columns).")
    return masks.astype(bool)


# --------------------------------------------------------------------------- PNG


def mask_png(mask: np.ndarray) -> bytes:
    """One 2-D mask as an 8-bit grayscale PNG: 255 inside, 0 outside."""
    from PIL import Image

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"A PNG mask must be one 2-D slice; got an array shaped {m.shape}.")
    buf = io.BytesIO()
    Image.fromarray(np.where(m.astype(bool), 255, 0).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- NIfTI


def _radiological_affine(stack: ImageStack) -> np.ndarray:
    """Voxel -> RAS mm for a volume un-transposed from radiological slices (no file geometry).

    In the canonical array the first axis runs to the patient's right (columns were shown
    with the patient's right on the left), the second anteriorly (rows ran from anterior at
    the top) and the third superiorly (slice order), so a diagonal affine is RAS+.
    """
    row_mm, col_mm = stack.spacing_mm or (1.0, 1.0)
    thickness = stack.slice_thickness_mm or 1.0
    return np.diag([float(col_mm), float(row_mm), float(thickness), 1.0])


def mask_nifti(masks: np.ndarray, stack: ImageStack) -> bytes:
    """Masks (n, H, W) aligned with ``stack.slices`` as a gzipped NIfTI-1 volume of 0/1 uint8.

    For a NIfTI input the volume has the voxel grid and affine of the closest-canonical
    original, so viewers overlay it on the original file exactly.
    """
    nib = require("nibabel")

    m = _check_masks(masks, stack)
    # Inverse of the reader's np.transpose(vol[::-1, ::-1, :], (2, 1, 0)).
    volume = np.ascontiguousarray(np.transpose(m, (2, 1, 0))[::-1, ::-1, :]).astype(np.uint8)
    affine = np.asarray(stack.affine, dtype=float) if stack.affine is not None else _radiological_affine(stack)
    # A fresh header: nothing from the source file (descrip, db_name, aux_file may name people).
    img = nib.Nifti1Image(volume, affine)
    img.set_data_dtype(np.uint8)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = b"MRI Insight mask"
    img.header["intent_name"] = b"mask"
    # mtime=0: the same mask gives the same bytes (no export time in the gzip header).
    return gzip.compress(img.to_bytes(), mtime=0)


# --------------------------------------------------------------------------- DICOM SEG


# The patient and study modules, kept (with the geometry) in a SEG that goes back to the PACS the
# scan came from (``deidentify=False``): the PACS files it with the patient's study.
_PATIENT_STUDY = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientAge",
                  "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription")


def _geometry_only(ds, keep_patient: bool = False):
    """A copy of a source header with only identity, pixel layout and geometry (and, with
    ``keep_patient``, the patient and study modules)."""
    dataset = require("pydicom.dataset", "pydicom")
    Dataset, FileMetaDataset = dataset.Dataset, dataset.FileMetaDataset
    ExplicitVRLittleEndian = require("pydicom.uid", "pydicom").ExplicitVRLittleEndian

    out = Dataset()
    for keyword in _SEG_SOURCE_KEYWORDS:
        if keyword in ds:
            out[keyword] = copy.deepcopy(ds[keyword])  # highdicom adds elements to the SEG as they are
    for keyword in _EMPTY_TYPE2:
        setattr(out, keyword, copy.deepcopy(ds[keyword].value) if keep_patient and keyword in ds else "")
    for keyword in _PATIENT_STUDY if keep_patient else ():
        if keyword in ds:
            out[keyword] = copy.deepcopy(ds[keyword])
    out.file_meta = FileMetaDataset()
    out.file_meta.TransferSyntaxUID = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None) or ExplicitVRLittleEndian
    return out


def _scrub(seg) -> None:
    for keyword in _EMPTY_TYPE2:
        setattr(seg, keyword, "")
    for keyword in _REMOVE:
        if keyword in seg:
            delattr(seg, keyword)
    seg.PatientIdentityRemoved = "YES"
    seg.DeidentificationMethod = "MRI Insight: patient and study identifiers removed, UIDs kept"


def _check_seg_sources(m: np.ndarray, stack: ImageStack) -> list:
    """The stack's DICOM headers, one per slice or one multi-frame image with per-frame geometry;
    a ValueError that says which export to use instead otherwise."""
    sources = stack.dicom_sources
    if len(sources) not in (1, m.shape[0]):
        raise ValueError(f"The stack has {m.shape[0]} slices but {len(sources)} DICOM headers; they must match one to one.")
    if len(sources) == 1 and m.shape[0] > 1 and "PerFrameFunctionalGroupsSequence" not in sources[0]:
        # A classic (non-enhanced) IOD with several frames has no per-frame geometry to
        # reference; highdicom would silently keep one frame.
        raise ValueError(
            "This multi-frame DICOM has no per-frame geometry (it is not an enhanced multi-frame image), "
            "so a DICOM Segmentation cannot reference its frames. Export the mask as NIfTI instead."
        )
    if len(sources) > 1 and not all("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds for ds in sources):
        raise ValueError(
            "These DICOM slices do not say where they lie in the patient (no image position or orientation), "
            "so a DICOM Segmentation cannot place them. Export the mask as NIfTI instead."
        )
    return sources


def _tumour_segment(hd, codes, algorithm_name: str, algorithm_version: str, origin: str):
    """The SEG's one segment, a tumour, said to be drawn as ``origin`` says (``Case.mask_origin``):
    by the model (AUTOMATIC), by the model and then a person (SEMIAUTOMATIC, the model named), or
    by a person alone (MANUAL, no algorithm)."""
    algorithm_type = hd.seg.SegmentAlgorithmTypeValues[origin]
    algorithm = None if origin == "MANUAL" else hd.AlgorithmIdentificationSequence(
        name=algorithm_name,
        version=algorithm_version,
        family=codes.cid7162.ArtificialIntelligence,
    )
    return hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Tumor",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=algorithm_type,
        algorithm_identification=algorithm,
    )


def dicom_seg_unavailable(stack: ImageStack) -> str | None:
    """Why the stack's masks cannot go out as a DICOM SEG (said before the user asks for one), or None."""
    if stack.format != "dicom" or not stack.dicom_sources:
        return (f"A DICOM Segmentation can only be made for a DICOM image or series; this image was read from "
                f"{stack.format.upper()}. Export the mask as NIfTI or PNG instead.")
    try:
        _check_seg_sources(np.zeros((stack.n_slices, 1, 1), bool), stack)
    except ValueError as exc:
        return str(exc)
    return None


def mask_dicom_seg(masks: np.ndarray, stack: ImageStack, algorithm_name: str, algorithm_version: str, *,
                   origin: str = "AUTOMATIC", creator: str | None = None, deidentify: bool = True,
                   series_description: str | None = None) -> bytes:
    """Masks (n, H, W) as a binary DICOM Segmentation referencing the stack's DICOM sources.

    Works for a series of single-frame images (one source per slice) and for one multi-frame
    image. The SEG carries the study and frame-of-reference UIDs (so PACS and viewers file it
    with the scan) but no patient identifiers. ``origin`` is ``Case.mask_origin``: a mask edited
    by hand must not reach a PACS as the model's output. ``creator``: the signed-in person who
    edited it (ContentCreatorName), where known and wanted: the default download names nobody.
    ``deidentify=False`` (the SEG goes back to the PACS the scan came from, ``mri_core.pacs``): the
    patient and study modules are kept. ``series_description``: instead of the default one.
    """
    if origin not in ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"):
        raise ValueError(f"unknown mask origin {origin!r}")
    unavailable = dicom_seg_unavailable(stack)
    if unavailable:
        raise ValueError(unavailable)
    m = _check_masks(masks, stack)
    sources = _check_seg_sources(m, stack)
    hd = require("highdicom")
    codes = require("pydicom.sr.codedict", "pydicom").codes
    try:
        seg = hd.seg.Segmentation(
            source_images=[_geometry_only(ds, keep_patient=not deidentify) for ds in sources],
            pixel_array=m,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[_tumour_segment(hd, codes, algorithm_name, algorithm_version, origin)],
            series_instance_uid=hd.UID(),
            series_number=900,  # high, so viewers list it after the scanner's own series
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="MRI Insight",
            manufacturer_model_name=algorithm_name,
            software_versions=algorithm_version,
            device_serial_number="none",
            series_description=series_description or (
                "MRI Insight tumour segmentation" + ("" if origin == "AUTOMATIC" else ", edited by hand")),
            # Keep every frame: readers then find one SEG frame per source frame, and an
            # all-empty result is still a valid (empty) segmentation.
            omit_empty_frames=False,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"These DICOM images cannot carry a DICOM Segmentation ({exc}). Export the mask as NIfTI instead.") from exc
    if int(seg.NumberOfFrames) != m.shape[0]:
        raise ValueError(f"The DICOM Segmentation came out with {seg.NumberOfFrames} frames for {m.shape[0]} slices.")
    if deidentify:
        _scrub(seg)
    if creator:  # after the scrub, which removes staff names too: only where the caller asks for it
        seg.ContentCreatorName = creator
    buf = io.BytesIO()
    seg.save_as(buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- report


def report_text(measurements: dict, model_name: str, spacing_known: bool, volume_ml: float | None = None,
                slice_index: int | None = None, *, file_name: str | None = None, date: str | None = None,
                edited: bool = False, dice: float | None = None, n_slices: int | None = None,
                abstention_reason: str = "") -> str:
    """A short plain-text report of one result: file, date, model, measurements, and what it is for.

    ``measurements`` is :meth:`mri_core.measure.Measurements.as_dict`; ``slice_index`` is
    0-based and written from 1, as the app numbers slices. ``edited``: the mask was corrected by
    hand (the report then says so instead of "automatic"). ``dice`` against a ground truth given
    for this slice. ``abstention_reason``: why the model cannot judge the slice (its mask is then for
    reference only). Nothing about the patient is written; ``file_name`` is the upload's name.
    """
    lines = ["MRI Insight: tumour segmentation, " + ("edited by hand" if edited else "automatic")]
    if file_name:
        lines.append(f"File: {file_name}")
    if date:
        lines.append(f"Date: {date}")
    lines.append(f"Model: {model_name}")
    if slice_index is not None:
        lines.append(f"Slice: {slice_index + 1}" + (f" of {n_slices}" if n_slices else ""))
    if abstention_reason:
        lines.append(f"The model cannot judge this slice: {abstention_reason} Its mask is for reference only.")
    rows = measurement_rows(measurements, spacing_known, edited=edited, volume_ml=volume_ml, dice=dice,
                            on_slice=slice_index is not None)
    lines += [f"{label}: {value}" for label, value in rows]
    lines.append(DISCLAIMER)
    return "\n".join(lines) + "\n"
