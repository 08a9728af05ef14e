"""Volumes from several files: a DICOM series ordered by slice position, or numbered
single-slice exports (e.g. a patient's JPEG slices) ordered by file name."""

from __future__ import annotations

import re

import numpy as np

from mri_core.io.base import ImageStack, UnreadableImage
from mri_core.io.dicom import dicom_affine, slice_position


def _instance_number(ds) -> float:
    """The file's InstanceNumber; a missing one counts as 0 and a malformed one ("1A") sorts last,
    so a damaged header never stops the series from being read."""
    try:
        return float(ds.get("InstanceNumber", 0) or 0)
    except (TypeError, ValueError):
        return float("inf")


def _series_order(stacks: list[ImageStack]) -> list[ImageStack]:
    """By position along the slice normal; files that do not say where they lie by InstanceNumber, after."""

    def key(s: ImageStack):
        ds = s.dicom_sources[0]
        pos = slice_position(ds)
        return (0, pos) if pos is not None else (1, _instance_number(ds))

    return sorted(stacks, key=key)


def stack_series(stacks: list[ImageStack]) -> ImageStack:
    """Join single-slice DICOM stacks of one series, ordered by position along the slice normal."""
    shapes = {s.slices.shape[1:] for s in stacks}
    if len(shapes) != 1:
        raise UnreadableImage("The DICOM files of this series have different image sizes and cannot be stacked.")
    ordered = _series_order(stacks)
    positions = [slice_position(s.dicom_sources[0]) for s in ordered]
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
        value_range=ordered[0].value_range if len({s.value_range for s in ordered}) == 1 else None,
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
