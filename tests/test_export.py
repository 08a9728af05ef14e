"""mri_core.export: each export lands on the voxels it was drawn on and names no patient."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest

from factories import dicom_bytes, nifti_bytes, phantom, png_bytes
from mri_core import export
from mri_core.display import DISCLAIMER
from mri_core.io import read_image, read_images
from mri_core.measure import measure

# Identifying values put into the source headers; none may appear in an export.
IDENTIFIERS = {
    "PatientName": "Doe^Jane",
    "PatientID": "ID-12345",
    "PatientBirthDate": "19700101",
    "StudyDate": "19991231",
    "AccessionNumber": "ACC-777",
    "ReferringPhysicianName": "Who^Doctor",
    "InstitutionName": "St Elsewhere Hospital",
    "OtherPatientIDs": "OTHER-999",
    "PatientAddress": "1 Main Street",
}


def _with_identifiers(stack):
    for ds in stack.dicom_sources:
        for keyword, value in IDENTIFIERS.items():
            setattr(ds, keyword, value)
    return stack


def _series_files(n: int = 3):
    """Single-slice DICOM files of one series, given out of slice order."""
    from pydicom.uid import generate_uid

    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    order = list(range(n))[::-1]
    return [
        (
            f"s{z}.dcm",
            dicom_bytes(
                (phantom(seed=z) * 1000).astype(np.uint16),
                position=(0.0, 0.0, 5.0 * z),
                series_uid=series,
                study_uid=study,
                frame_of_reference_uid=frame_of_reference,
                instance=z + 1,
            ),
        )
        for z in order
    ]


@pytest.fixture
def series_stack():
    ((_, stack),) = read_images(_series_files())
    assert stack.n_slices == 3 and len(stack.dicom_sources) == 3
    return _with_identifiers(stack)


def _masks(shape) -> np.ndarray:
    """Different shapes on different slices (and one empty slice), so a mix-up shows."""
    masks = np.zeros(shape[:3], bool)
    masks[0, 10:20, 30:45] = True
    masks[-1, 50:70, 5:9] = True
    masks[-1, 60, 60] = True
    return masks


def _decoded_seg_frames(data: bytes):
    """(referenced SOP instance UID, referenced frame number or None, frame) for each SEG frame."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    frames = ds.pixel_array.reshape((-1, ds.Rows, ds.Columns)).astype(bool)
    out = []
    for item, frame in zip(ds.PerFrameFunctionalGroupsSequence, frames):
        ref = item.DerivationImageSequence[0].SourceImageSequence[0]
        number = ref.get("ReferencedFrameNumber")
        out.append((str(ref.ReferencedSOPInstanceUID), None if number is None else int(number), frame))
    return ds, out


# --------------------------------------------------------------------------- PNG


def test_mask_png_is_0_255_and_round_trips():
    from PIL import Image

    mask = _masks((1, 96, 96))[0]
    im = Image.open(io.BytesIO(export.mask_png(mask)))
    assert im.mode == "L" and im.size == (96, 96)
    arr = np.asarray(im)
    assert set(np.unique(arr)) == {0, 255}
    np.testing.assert_array_equal(arr == 255, mask)


def test_mask_png_wants_one_slice():
    with pytest.raises(ValueError, match="2-D"):
        export.mask_png(np.zeros((2, 16, 16), bool))


# --------------------------------------------------------------------------- NIfTI


def _load_nifti(data: bytes):
    import nibabel as nib

    return nib.Nifti1Image.from_bytes(gzip.decompress(data))


def test_mask_nifti_overlays_a_non_canonical_original():
    import nibabel as nib

    # An original stored the way DICOM converters often write it: axes permuted and flipped
    # (i -> -x, j -> +z, k -> -y), with a bright box that the "model" segments.
    affine = np.array([[-0.9, 0, 0, 90.0], [0, 0, -1.2, 100.0], [0, 3.0, 0, -50.0], [0, 0, 0, 1]])
    vol = np.random.default_rng(0).random((30, 8, 26)).astype(np.float32) * 0.5
    painted = np.zeros(vol.shape, bool)
    painted[5:12, 2:4, 10:15] = True
    vol[painted] = 1.0
    original_bytes = nifti_bytes(vol, zooms=(0.9, 3.0, 1.2), affine=affine)
    stack = read_image(original_bytes, "t1.nii")
    masks = stack.slices > 0.9

    mask_img = _load_nifti(export.mask_nifti(masks, stack))
    original = nib.Nifti1Image.from_bytes(original_bytes)
    canon_original, canon_mask = nib.as_closest_canonical(original), nib.as_closest_canonical(mask_img)
    assert canon_mask.shape == canon_original.shape
    np.testing.assert_allclose(canon_mask.affine, canon_original.affine)
    painted_canon = np.asarray(nib.as_closest_canonical(nib.Nifti1Image(painted.astype(np.uint8), affine)).dataobj) > 0
    np.testing.assert_array_equal(np.asarray(canon_mask.dataobj) > 0, painted_canon)

    # The same in world coordinates, without trusting as_closest_canonical: a viewer puts the
    # mask's voxels exactly on the painted voxels of the original file.
    def world(img, voxels):
        return {tuple(np.round(p, 3)) for p in nib.affines.apply_affine(img.affine, np.argwhere(voxels))}

    assert world(mask_img, np.asarray(mask_img.dataobj) > 0) == world(original, painted)


def test_mask_nifti_header_is_clean_and_uint8(series_stack):
    data = export.mask_nifti(_masks(series_stack.slices.shape), series_stack)
    img = _load_nifti(data)
    assert img.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(img.dataobj))) == {0, 1}
    assert img.header["descrip"].item() == b"MRI Insight mask"
    raw = gzip.decompress(data)
    for value in IDENTIFIERS.values():
        assert value.encode() not in raw


def test_mask_nifti_of_a_dicom_series_lies_where_the_series_does(series_stack):
    import nibabel as nib

    masks = _masks(series_stack.slices.shape)
    img = _load_nifti(export.mask_nifti(masks, series_stack))
    # Pixel spacing 0.5 mm, slices 5 mm apart, axial: a diagonal (RAS+) rotation and zoom ...
    np.testing.assert_allclose(img.affine[:3, :3], np.diag([0.5, 0.5, 5.0]))
    n, h, w = masks.shape
    vol = np.asarray(img.dataobj)
    assert vol.shape == (w, h, n)
    k, r, c = 0, 10, 30  # painted; columns run to the patient's left, rows to posterior
    assert masks[k, r, c] and vol[w - 1 - c, h - 1 - r, k] == 1
    # ... and every painted voxel where DICOM puts its pixel (IPP + c * dc * X + r * dr * Y, LPS),
    # so the mask overlays a standard conversion of the series (origin 0 did not).
    for k, r, c in np.argwhere(masks):
        ds = series_stack.dicom_sources[k]
        iop = np.asarray(ds.ImageOrientationPatient, float)
        dr, dc = (float(v) for v in ds.PixelSpacing)
        lps = np.asarray(ds.ImagePositionPatient, float) + c * dc * iop[:3] + r * dr * iop[3:]
        ras = nib.affines.apply_affine(img.affine, [w - 1 - c, h - 1 - r, k])
        np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-6)


def test_mask_nifti_without_geometry_uses_spacing_in_the_radiological_convention():
    stack = read_image(png_bytes((phantom() * 255).astype(np.uint8)), "a.png")
    img = _load_nifti(export.mask_nifti(_masks(stack.slices.shape), stack))
    np.testing.assert_allclose(img.affine, np.eye(4))


@pytest.mark.parametrize("kind", ["png", "dicom", "nifti"])
def test_mask_nifti_reads_back_onto_the_same_slices(kind, series_stack):
    if kind == "png":
        stack = read_image(png_bytes((phantom() * 255).astype(np.uint8)), "a.png")
    elif kind == "dicom":
        stack = series_stack
    else:
        stack = read_image(nifti_bytes(np.random.default_rng(2).random((96, 96, 4)).astype(np.float32)), "v.nii")
    masks = _masks(stack.slices.shape)
    back = read_image(export.mask_nifti(masks, stack), "mask.nii.gz")
    np.testing.assert_array_equal(back.slices > 0.5, masks)
    if stack.spacing_mm is None:
        assert back.spacing_mm == (1.0, 1.0) and back.slice_thickness_mm == 1.0


def test_mask_nifti_refuses_misaligned_masks(series_stack):
    with pytest.raises(ValueError, match="shaped"):
        export.mask_nifti(np.zeros((2, 96, 96), bool), series_stack)


# --------------------------------------------------------------------------- DICOM SEG


def test_seg_of_a_single_frame_series(series_stack):
    from pydicom.uid import SegmentationStorage

    masks = _masks(series_stack.slices.shape)
    data = export.mask_dicom_seg(masks, series_stack, "unet_lite", "1.2")
    ds, frames = _decoded_seg_frames(data)
    assert ds.SOPClassUID == SegmentationStorage
    assert ds.SegmentationType == "BINARY"
    assert ds.StudyInstanceUID == series_stack.dicom_sources[0].StudyInstanceUID
    assert ds.FrameOfReferenceUID == series_stack.dicom_sources[0].FrameOfReferenceUID
    segment = ds.SegmentSequence[0]
    assert segment.SegmentLabel == "Tumor" and segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"  # SCT Neoplasm
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("unet_lite", "1.2")

    source_uids = [str(s.SOPInstanceUID) for s in series_stack.dicom_sources]
    referenced = {str(i.ReferencedSOPInstanceUID) for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == set(source_uids)
    assert sorted(uid for uid, _, _ in frames) == sorted(source_uids)  # one frame per slice, empty ones kept
    for uid, _, frame in frames:
        np.testing.assert_array_equal(frame, masks[source_uids.index(uid)])


@pytest.mark.parametrize("origin", ["SEMIAUTOMATIC", "MANUAL"])
def test_a_seg_edited_by_hand_says_so(series_stack, origin):
    """A PACS must not file a person's edit as the model's output (issue 27)."""
    data = export.mask_dicom_seg(_masks(series_stack.slices.shape), series_stack, "unet_lite", "1.2", origin=origin,
                                 creator="Reader^Anna")
    ds, _ = _decoded_seg_frames(data)
    segment = ds.SegmentSequence[0]
    assert segment.SegmentAlgorithmType == origin and str(ds.ContentCreatorName) == "Reader^Anna"
    assert "edited by hand" in ds.SeriesDescription
    if origin == "MANUAL":  # drawn by a person alone: no algorithm is named
        assert "SegmentationAlgorithmIdentificationSequence" not in segment
    else:
        assert segment.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "unet_lite"
    with pytest.raises(ValueError):
        export.mask_dicom_seg(_masks(series_stack.slices.shape), series_stack, "unet_lite", "1", origin="BY HAND")


def test_seg_of_one_single_frame_image_without_geometry():
    stack = read_image(dicom_bytes((phantom() * 1000).astype(np.uint16)), "one.dcm")
    masks = _masks(stack.slices.shape)
    ds, frames = _decoded_seg_frames(export.mask_dicom_seg(masks, stack, "unet_lite", "1"))
    ((uid, _, frame),) = frames
    assert uid == stack.dicom_sources[0].SOPInstanceUID
    np.testing.assert_array_equal(frame, masks[0])


def test_seg_of_an_enhanced_multiframe_image():
    import highdicom as hd
    import pydicom
    from pydicom.uid import generate_uid

    singles = [pydicom.dcmread(io.BytesIO(data)) for _, data in _series_files()]
    for ds in singles:  # Type 1/2 attributes the legacy converter wants that the factory leaves out
        ds.StudyTime, ds.AccessionNumber, ds.StudyID, ds.SeriesNumber = "120000", "", "", 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        singles, series_instance_uid=generate_uid(), series_number=2, sop_instance_uid=generate_uid(), instance_number=1
    )
    buf = io.BytesIO()
    enhanced.save_as(buf)
    stack = _with_identifiers(read_image(buf.getvalue(), "enhanced.dcm"))
    assert stack.n_slices == 3 and len(stack.dicom_sources) == 1

    masks = _masks(stack.slices.shape)
    data = export.mask_dicom_seg(masks, stack, "unet_lite", "1")
    _, frames = _decoded_seg_frames(data)
    assert sorted(number for _, number, _ in frames) == [1, 2, 3]
    for uid, number, frame in frames:
        assert uid == stack.dicom_sources[0].SOPInstanceUID
        np.testing.assert_array_equal(frame, masks[number - 1])
    for value in IDENTIFIERS.values():
        assert value.encode() not in data


def test_seg_names_no_patient(series_stack):
    import pydicom

    data = export.mask_dicom_seg(_masks(series_stack.slices.shape), series_stack, "unet_lite", "1")
    for value in IDENTIFIERS.values():
        assert value.encode() not in data, value
    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "AccessionNumber"):
        assert str(ds.get(keyword, "")) == "", keyword
    for keyword in ("InstitutionName", "OtherPatientIDs", "PatientAddress", "PatientAge"):
        assert keyword not in ds, keyword
    assert ds.PatientIdentityRemoved == "YES"


def test_seg_of_pydicoms_real_mr_file_names_no_patient():
    import pydicom
    from pydicom.data import get_testdata_file

    path = Path(get_testdata_file("MR_small.dcm"))
    source = pydicom.dcmread(path)
    stack = read_image(path.read_bytes(), "MR_small.dcm")
    data = export.mask_dicom_seg(_masks(stack.slices.shape), stack, "unet_lite", "1")
    for keyword in ("PatientName", "PatientID", "InstitutionName", "ReferringPhysicianName"):
        value = str(source.get(keyword, "")).strip()
        if value:
            assert value.encode() not in data, keyword
    _, ((uid, _, _),) = _decoded_seg_frames(data)
    assert uid == source.SOPInstanceUID


def test_seg_refuses_images_that_are_not_dicom():
    stack = read_image(png_bytes((phantom() * 255).astype(np.uint8)), "a.png")
    with pytest.raises(ValueError, match="only be made for a DICOM"):
        export.mask_dicom_seg(_masks(stack.slices.shape), stack, "unet_lite", "1")


def test_seg_refuses_a_classic_multiframe_without_frame_geometry():
    stack = read_image(dicom_bytes((np.stack([phantom(seed=i) for i in range(3)]) * 1000).astype(np.uint16)), "m.dcm")
    with pytest.raises(ValueError, match="per-frame geometry"):
        export.mask_dicom_seg(_masks(stack.slices.shape), stack, "unet_lite", "1")


def test_seg_refuses_a_series_without_slice_positions():
    from pydicom.uid import generate_uid

    uids = {"series_uid": generate_uid(), "study_uid": generate_uid(), "frame_of_reference_uid": generate_uid()}
    files = [(f"{i}.dcm", dicom_bytes((phantom(seed=i) * 1000).astype(np.uint16), instance=i + 1, **uids)) for i in range(3)]
    ((_, stack),) = read_images(files)
    with pytest.raises(ValueError, match="where they lie"):
        export.mask_dicom_seg(_masks(stack.slices.shape), stack, "unet_lite", "1")


# --------------------------------------------------------------------------- report


def test_report_in_millimetres():
    mask = np.zeros((96, 96), bool)
    mask[10:20, 30:45] = True
    m = measure(mask, (0.5, 0.5)).as_dict()
    text = export.report_text(m, "unet_lite", spacing_known=True, volume_ml=1.234, slice_index=0)
    assert "unet_lite" in text
    assert f"{m['area_mm2']:.1f} mm²" in text and f"({m['area_px']} px)" in text
    assert f"{m['longest_diameter_mm']:.1f} mm" in text and f"{m['perpendicular_diameter_mm']:.1f} mm" in text
    assert "Lesions: 1" in text and "1.23 mL" in text
    assert DISCLAIMER in text


def test_report_in_pixels_and_without_tumour():
    m = measure(_masks((3, 96, 96))[-1]).as_dict()
    text = export.report_text(m, "unet_lite", spacing_known=False)
    assert "mm" not in text.replace("millimetres", "")
    assert f"{m['longest_diameter_px']:.1f} px" in text and "Lesions: 2" in text
    assert "spacing unknown" in text
    empty = export.report_text(measure(np.zeros((8, 8), bool)).as_dict(), "unet_lite", spacing_known=False, slice_index=3)
    assert "Tumour: none segmented on this slice" in empty and "Slice: 4" in empty
    assert "cannot judge" not in empty
    held = export.report_text(m, "unet_lite", spacing_known=False, slice_index=3, abstention_reason="Far from training.")
    assert "The model cannot judge this slice: Far from training. Its mask is for reference only." in held
