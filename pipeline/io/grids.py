"""Putting a label map onto its image's voxel grid: exactly, without interpolation, or not at all.

Tools store the same voxels in different axis orders: a DICOM series read in its native sagittal order, its
segmentation saved in LPS order by another tool, or reoriented as DOSMA and nibabel's canonical form do. When the
two grids have the same voxel centres (one is a permutation and/or flip of the other's axes), the label array is
transposed and flipped onto the image grid, voxel for voxel. Any other difference (spacing, shift, rotation,
size) is a genuinely different grid and an error describing both: resampling labels silently would move
cartilage boundaries.
"""

from __future__ import annotations

import numpy as np

from ..errors import GeometryMismatchError
from ..volume import Volume

INDEX_TOLERANCE = 2e-3  # voxels: float32 direction cosines in NIfTI headers move centres by ~1e-5 voxel


def axis_mapping(moving: Volume, fixed: Volume) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]] | None:
    """How ``moving``'s index axes map onto ``fixed``'s when both grids share their voxel centres.

    Returns (perm, flip) in ITK axis order: fixed axis b is moving axis perm[b], reversed where flip[b]; None when
    the grids do not share their voxel centres.
    """
    found = _signed_permutation(moving, fixed)
    if found is None:
        return None
    perm, flip, shift = found
    for b in range(3):
        if moving.size[perm[b]] != fixed.size[b]:
            return None
        expected = fixed.size[b] - 1 if flip[b] else 0
        if abs(shift[b] - expected) > INDEX_TOLERANCE:
            return None
    return perm, flip


def _signed_permutation(
    moving: Volume, fixed: Volume
) -> tuple[tuple[int, int, int], tuple[bool, bool, bool], np.ndarray] | None:
    """(perm, flip, shift) when ``moving``'s index axes are ``fixed``'s permuted and possibly reversed (fixed axis b
    is moving axis perm[b]; shift: where moving's index 0 lands, in fixed indices); None for any other rotation."""
    m = np.linalg.inv(fixed.affine) @ moving.affine  # moving index -> fixed index
    rotation, shift = m[:3, :3], m[:3, 3]
    signs = np.rint(rotation)
    if np.abs(rotation - signs).max() > INDEX_TOLERANCE or not np.array_equal(np.abs(signs).sum(0), np.ones(3)):
        return None
    if not np.array_equal(np.abs(signs).sum(1), np.ones(3)):
        return None
    perm = tuple(int(np.flatnonzero(signs[b])[0]) for b in range(3))
    flip = tuple(bool(signs[b, perm[b]] < 0) for b in range(3))
    return perm, flip, shift  # type: ignore[return-value]


def embed_on_grid(moving: Volume, fixed: Volume) -> Volume | None:
    """``moving``'s voxels on ``fixed``'s grid when they are a block of it (same voxel centres, axes permuted or
    flipped, possibly fewer slices, e.g. a DICOM-SEG that left out its empty frames); zeros elsewhere. None when
    the grids do not share their voxel centres."""
    found = _signed_permutation(moving, fixed)
    if found is None:
        return None
    perm, flip, shift = found
    starts = []
    for b in range(3):
        n = moving.size[perm[b]]
        first = float(shift[b]) - (n - 1 if flip[b] else 0)  # fixed index of the block's lowest corner
        if abs(first - round(first)) > INDEX_TOLERANCE or round(first) < 0 or round(first) + n > fixed.size[b]:
            return None
        starts.append(round(first))
    block = moving.array.transpose(2, 1, 0).transpose(perm)  # ITK (i, j, k) order, then fixed's axis order
    block = np.flip(block, axis=tuple(b for b in range(3) if flip[b])) if any(flip) else block
    out = np.zeros(fixed.size, dtype=moving.array.dtype)
    out[tuple(slice(start, start + n) for start, n in zip(starts, block.shape, strict=True))] = block
    return Volume(np.ascontiguousarray(out.transpose(2, 1, 0)), fixed.spacing, fixed.origin, fixed.direction)


def describe_grid(volume: Volume) -> str:
    def fmt(values) -> str:
        return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"

    return (
        f"size {tuple(volume.size)}, spacing {fmt(volume.spacing)} mm, origin {fmt(volume.origin)} mm, "
        f"orientation {volume.orientation}"
    )


def align_to_grid(labels: Volume, image: Volume) -> tuple[Volume, str | None]:
    """``labels`` on ``image``'s grid, and a note when it had to be reoriented (None when already there).

    Raises:
        GeometryMismatchError: the grids do not share their voxel centres (both described); a DICOM-SEG made on
            another series.
    """
    place_on = getattr(labels.source, "place_on", None)  # a DICOM-SEG places itself (io.dicom_seg_reader)
    if place_on is not None:
        return place_on(image)
    if not image.same_grid(labels):
        return labels, None
    mapping = axis_mapping(labels, image)
    if mapping is None:
        raise GeometryMismatchError(
            "The label map does not lie on the image's voxel grid (" + "; ".join(image.same_grid(labels)) + "). "
            f"Image grid: {describe_grid(image)}; label grid: {describe_grid(labels)}. Give the segmentation that "
            "was made from this image, or resample it onto the image first."
        )
    perm, flip = mapping
    array = labels.array.transpose(2, 1, 0).transpose(perm)  # ITK (i, j, k) order, then fixed's axis order
    flipped = [axis for axis in range(3) if flip[axis]]
    if flipped:
        array = np.flip(array, axis=tuple(flipped))
    array = np.ascontiguousarray(array.transpose(2, 1, 0))
    note = (
        f"The label map stores the image's voxels in another axis order ({labels.orientation} vs the image's "
        f"{image.orientation}); it was reoriented onto the image grid exactly (axes permuted/flipped, no "
        "interpolation)."
    )
    reoriented = Volume(array, image.spacing, image.origin, image.direction, meta={**labels.meta})
    return reoriented.with_meta(reoriented_from=labels.orientation), note
