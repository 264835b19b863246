"""The source DICOM instances a derived DICOM object (SEG, Parametric Map) is built on, one per slice of the grid.

A derived object's frames are the analysed grid's slices, placed where their source files say they are: frame k
copies file k's own ImagePositionPatient and references file k (echo 1). Real series are not perfectly regular
(the GE MESE knee's slice steps run from 3.99914 to 4.00048 mm; 2-D series leave gaps between slices), so
reconstructing a regular volume and matching it back to the files (what highdicom does for a ``Volume``) fails
where copying each file's own position cannot. What is checked is the one thing that can go wrong: that slice k
of the grid is file k (same pixel grid, same orientation, within half a voxel of the file's position).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..volume import Volume

#: The grid's slice k must lie within this fraction of a voxel of file k's position (and orientation).
POSITION_TOLERANCE_VOXELS = 0.5
ORIENTATION_TOLERANCE = 1e-3
PIXEL_DATA = 0x7FE00010
VALID_DATE = re.compile(r"[1-9]\d{3}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")
#: Type 2 patient/study attributes (present, possibly empty, in a conformant MR image) that highdicom copies into
#: derived objects; anonymised exports sometimes drop them, and an empty value is what the standard allows.
TYPE2_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


class DicomObjectUnavailable(Exception):
    """A DICOM object cannot be made for this result; the message says why (recorded in results.json)."""


@dataclass(frozen=True)
class SourceFrames:
    """The source headers in the grid's slice order, and how far the grid lies from their positions.

    Attributes:
        headers: echo 1's header of each slice k (pydicom Datasets, pixel data deferred).
        series_uid: the source SeriesInstanceUID.
        max_offset_mm: largest distance between the grid's slice origin and its file's ImagePositionPatient (the
            reader's regular grid vs the scanner's own positions; about 1e-3 mm on the GE MESE series).
    """

    headers: tuple[Any, ...]
    series_uid: str
    max_offset_mm: float


def source_frames(image: Volume | None, grid: Volume, *, what: str) -> SourceFrames:
    """Echo 1's headers, one per slice of ``grid`` (the label map or T2 map on the image grid).

    Raises:
        DicomObjectUnavailable: no DICOM series behind the image, or ``grid`` is not on its files (the reason).
    """
    if image is None:
        raise DicomObjectUnavailable(
            f"No image was analysed (label map only): a {what} must reference the DICOM series it was made from. "
            f"Give the DICOM series with the label map to get one."
        )
    source = image.source
    if source is None:
        kind = image.meta.get("source_format") or "a non-DICOM file"
        raise DicomObjectUnavailable(
            f"The image was read from {kind} ({image.meta.get('file_name') or 'in memory'}), not from a classic "
            f"DICOM series whose headers were kept: a {what} references the source DICOM instances. Upload the "
            "DICOM series (folder or zip) to get one."
        )
    headers = tuple(source.echoes[0].headers)
    nk, nj, ni = grid.array.shape
    if len(headers) != nk:
        raise DicomObjectUnavailable(
            f"The DICOM series has {len(headers)} files for echo 1 but the analysed grid has {nk} slices; no {what} "
            "was written. Upload the series with one file per slice and echo."
        )
    offsets = [_slice_offset_mm(grid, k, ds, (nj, ni), what) for k, ds in enumerate(headers)]
    return SourceFrames(headers, str(source.series.get("series_instance_uid", "")), float(max(offsets, default=0.0)))


def _slice_offset_mm(grid: Volume, k: int, ds: Any, shape: tuple[int, int], what: str) -> float:
    """Distance (mm) between slice k's first voxel and file k's position; an error when they are not one image."""
    rows, columns = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    if (rows, columns) != shape:
        raise DicomObjectUnavailable(
            f"The analysed grid's slices are {shape[0]} x {shape[1]} pixels but the source files are {rows} x "
            f"{columns}; no {what} was written. Give the label map made on this series' own grid."
        )
    orientation = np.asarray(getattr(ds, "ImageOrientationPatient", None) or [np.nan] * 6, dtype=float)
    expected = np.concatenate([grid.direction[:, 0], grid.direction[:, 1]])
    position = np.asarray(getattr(ds, "ImagePositionPatient", None) or [np.nan] * 3, dtype=float)
    offset = float(np.linalg.norm(grid.index_to_physical(np.array([[0.0, 0.0, k]]))[0] - position))
    tolerance = POSITION_TOLERANCE_VOXELS * min(grid.spacing)
    if not np.allclose(orientation, expected, atol=ORIENTATION_TOLERANCE) or not offset <= tolerance:
        raise DicomObjectUnavailable(
            f"Slice {k + 1} of the analysed grid does not lie on its source file {getattr(ds, 'SOPInstanceUID', '?')}"
            f" (off by {offset:.3g} mm, more than half a voxel, or turned); no {what} was written. The label map "
            "must be on the DICOM series' own grid: analyse the series with it, or segment the series."
        )
    return offset


def without_pixels(ds: Any):
    """A new Dataset with the header's elements, minus its (deferred, never needed) pixel data, plus any missing
    Type 2 attributes as empty values, and anonymiser placeholder dates (year 0001) emptied. The headers were read
    once by pipeline.io and are reused, not reread; the copy keeps the caller's Dataset untouched."""
    from pydicom.dataset import Dataset

    # keys() and get_item(): iterating the Dataset itself would read the deferred pixel data from the file.
    copy = Dataset({tag: ds.get_item(tag) for tag in ds.keys() if tag != PIXEL_DATA})  # noqa: SIM118
    for keyword in TYPE2_ATTRIBUTES:
        if keyword not in copy:
            setattr(copy, keyword, "")
    for element in copy:
        # The real GE series' anonymiser wrote 00010101 for every date, which is no valid DA (validators reject
        # it); the derived objects copy the study's dates, so an empty value (unknown, as Type 2 allows) stands in.
        if element.VR == "DA" and element.value and not VALID_DATE.fullmatch(str(element.value)):
            element.value = ""
    return copy


def series_laterality(side: str) -> str:
    """General Series Laterality of a derived object: the knee side found, empty (unknown) otherwise."""
    return {"right": "R", "left": "L"}.get(side, "")
