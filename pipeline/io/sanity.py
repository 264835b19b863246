"""An image's geometry and voxels checked once it is read, for every reader and every caller (app, CLI, batch,
compare say the same sentence): spacing finite and positive, axes perpendicular, origin finite; an image with no
finite voxel refused, NaN/Inf voxels of an image masked (with a QC note), a label map with them refused."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..errors import InvalidInputError
from ..volume import Volume
from .limits import check_spacing

#: Direction cosines are stored in float32 by NIfTI: perpendicular axes agree with the identity to ~1e-6.
ORTHONORMAL_TOLERANCE = 1e-3
#: Where a Volume keeps remarks about its input for the analysis's QC warnings.
INPUT_NOTES = "input_notes"


def check_geometry(volume: Volume, name: str) -> None:
    """Refuse a volume whose geometry cannot be measured in: zero, negative or non-finite spacing, axes that are
    not perpendicular unit vectors, a non-finite origin."""
    check_spacing(volume.spacing, name)
    direction = np.asarray(volume.direction, dtype=float)
    if not np.all(np.isfinite(direction)) or np.abs(direction @ direction.T - np.eye(3)).max() > ORTHONORMAL_TOLERANCE:
        raise InvalidInputError(
            f"{name}: the image axes are not perpendicular unit vectors (direction cosines "
            f"{np.round(direction, 3).tolist()}); KneeScope measures in millimetres on an orthogonal voxel grid. "
            "Export the image again from the scanner or the DICOM original (or resample it to an orthogonal grid)."
        )
    if not all(math.isfinite(float(v)) for v in volume.origin):
        raise InvalidInputError(
            f"{name}: the image origin is not a finite position ({volume.origin}); the file's geometry is damaged. "
            "Export it again."
        )


def finite_image(volume: Volume, name: str) -> Volume:
    """The image with NaN/Inf voxels set to its lowest finite value and a note for the QC warnings; an image with
    no finite voxel, or one value everywhere, is refused (ITK's NIfTI reader turns NaN into 0, so an all-NaN NIfTI
    arrives as an all-zero image)."""
    data = volume.array
    finite = np.isfinite(data) if np.issubdtype(data.dtype, np.floating) else None
    if finite is None or finite.all():
        check_not_blank(volume, name)
        return volume
    count = int(finite.size - np.count_nonzero(finite))
    if count == finite.size:
        raise InvalidInputError(
            f"{name}: every voxel is NaN or infinite: the image holds no intensities to analyse. Export it again."
        )
    cleaned = np.where(finite, data, data[finite].min())
    note = (
        f"{name}: {count:,} voxels ({count / finite.size:.1%}) were NaN or infinite and were set to the image's "
        "lowest value; check the export if they lie in the knee."
    )
    notes = (*volume.meta.get(INPUT_NOTES, ()), note)
    return replace(volume, array=cleaned.astype(data.dtype, copy=False), meta={**volume.meta, INPUT_NOTES: notes})


def check_not_blank(volume: Volume, name: str) -> None:
    """An image with one value everywhere holds nothing to segment or to overlay: refused (what a blank export, or
    an all-NaN NIfTI that ITK read as zeros, looks like)."""
    data = volume.array
    if data.size and data.min() == data.max():
        raise InvalidInputError(
            f"{name}: every voxel has the same value ({float(data.flat[0]):g}): the image is blank, with nothing to "
            "analyse. Check the export (an empty or NaN-filled image)."
        )


def check_finite_labels(volume: Volume, name: str) -> None:
    """A label map with NaN/Inf voxels is damaged (labels are whole numbers): refused."""
    data = volume.array
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise InvalidInputError(
            f"{name}: the label map holds NaN or infinite values; a segmentation holds whole-number labels only. "
            "Export it again."
        )
