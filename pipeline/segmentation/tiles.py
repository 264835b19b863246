"""Which sliding-window tiles can be skipped: those wholly outside the knee's bounding box.

The box comes from a cheap first pass over the preprocessed image: Otsu's threshold on a 2x-subsampled copy, one
opening against noise, the largest connected piece (the leg), padded by a margin. A skipped tile still contributes
to nnU-Net's Gaussian-weighted average: it gets the network's own answer for the first such tile of the image (air,
all background for a trained model), so the accumulation and the tile count stay as nnU-Net has them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MARGIN_MM = 10.0
_SUBSAMPLE = 2


def knee_box(image: np.ndarray, spacing: Sequence[float], *, margin_mm: float = MARGIN_MM) -> np.ndarray | None:
    """(2, 3) [lo, hi) voxel bounds of the largest bright piece of ``image`` (z, y, x), padded; None if unclear."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    small = np.asarray(image[::_SUBSAMPLE, ::_SUBSAMPLE, ::_SUBSAMPLE], dtype=np.float32)
    if small.size < 8 or float(small.max()) <= float(small.min()):
        return None
    mask = ndimage.binary_opening(small > threshold_otsu(small))
    pieces, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = np.bincount(pieces.ravel())[1:]
    where = np.argwhere(pieces == int(np.argmax(sizes)) + 1)
    margin = np.ceil(margin_mm / np.asarray(spacing, dtype=float)).astype(int)
    lo = np.maximum(where.min(axis=0) * _SUBSAMPLE - margin, 0)
    hi = np.minimum((where.max(axis=0) + 1) * _SUBSAMPLE + margin, image.shape)
    return np.stack([lo, hi])


def tiles_needed(
    slicers: Sequence[tuple], padded_shape: Sequence[int], image_shape: Sequence[int], box: np.ndarray | None
) -> list[bool] | None:
    """Per slicer: does the tile overlap ``box``? ``box`` is in image coordinates; nnU-Net pads small images
    symmetrically (floor below) before tiling, so it is shifted by that padding. None when nothing is skipped."""
    if box is None:
        return None
    offset = (np.asarray(padded_shape) - np.asarray(image_shape)) // 2
    lo, hi = box[0] + offset, box[1] + offset
    needed = []
    for slicer in slicers:
        spatial = slicer[-len(image_shape) :]
        needed.append(all(s.start < h and s.stop > low for s, low, h in zip(spatial, lo, hi, strict=True)))
    return needed if not all(needed) else None
