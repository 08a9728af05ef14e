"""mri_core.io.volumes: a DICOM series ordered by slice position, numbered slices joined by name."""

from __future__ import annotations

import numpy as np
import pytest

from factories import dicom_bytes, phantom, png_bytes
from mri_core.io import UnreadableImage, join_slices, read_image, read_images


def test_dicom_series_is_ordered_by_position():
    uid = "1.2.826.0.1.3680043.8.498.1"
    files = []
    for z in (10.0, 0.0, 5.0):  # dropped out of order
        img = np.full((32, 32), int(z * 10) + 1, np.uint16)
        img[0, 0] = 0
        files.append((f"s{z}.dcm", dicom_bytes(img, position=(0, 0, z), series_uid=uid, instance=int(z))))
    files.append(("other.png", png_bytes((phantom() * 255).astype(np.uint8))))
    results = read_images(files)
    assert len(results) == 2
    label, stack = results[0]
    assert stack.n_slices == 3
    assert stack.slice_thickness_mm == pytest.approx(5.0)
    positions = [float(ds.ImagePositionPatient[2]) for ds in stack.dicom_sources]
    assert positions == [0.0, 5.0, 10.0]
    assert results[1][0] == "other.png"


def test_join_slices_orders_by_file_name_and_refuses_mixed_sizes():
    a, b, c = (read_image(png_bytes((phantom(seed=z) * 255).astype(np.uint8)), "x.png") for z in range(3))
    vol = join_slices([("p_10.png", c), ("p_2.png", b), ("p_1.png", a)])
    assert vol.n_slices == 3 and vol.slice_thickness_mm is None
    np.testing.assert_array_equal(vol.slices, np.concatenate([a.slices, b.slices, c.slices]))
    assert "ordered by file name (p_1.png … p_10.png)" in vol.notes[0]
    small = read_image(png_bytes((phantom(40, 40) * 255).astype(np.uint8)), "s.png")
    with pytest.raises(UnreadableImage, match="differ in size"):
        join_slices([("a.png", a), ("s.png", small)])
    with pytest.raises(UnreadableImage, match="at least two"):
        join_slices([("a.png", a)])
    with pytest.raises(UnreadableImage, match="already holds a stack"):
        join_slices([("a.png", a), ("v.png", vol)])


def test_a_series_with_a_malformed_instance_number_is_still_read():
    # "7A" is not an IS value: sorting by it raised a bare ValueError out of read_images.
    files = []
    for z in range(2):
        data = dicom_bytes((phantom(seed=z) * 1000).astype(np.uint16), series_uid="1.2.826.0.1.3680043.8.498.5",
                           instance=7 + z)
        element = b"\x20\x00\x13\x00IS\x02\x00" + str(7 + z).encode() + b" "  # (0020,0013) InstanceNumber
        assert element in data
        files.append((f"s{z}.dcm", data.replace(element, element[:-2] + b"7A") if z == 0 else data))
    [(label, stack)] = read_images(files)
    assert not isinstance(stack, UnreadableImage), stack
    assert stack.n_slices == 2 and "one series" in label
