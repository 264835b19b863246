"""The one image type that travels through the pipeline: voxels plus their patient geometry.

Convention (SimpleITK's): ``array`` is indexed ``[k, j, i]``; ``spacing``, ``origin`` and the columns of
``direction`` are in ITK ``(i, j, k)`` order; physical points are LPS millimetres, as ITK and DICOM use.
Converting between the two orders happens only in this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Volume:
    """A 3-D image or label map on a voxel grid in patient space.

    Attributes:
        array: voxel values, shape (nk, nj, ni), numpy order of SimpleITK.
        spacing: voxel size (si, sj, sk) in mm.
        origin: LPS position (mm) of voxel (0, 0, 0).
        direction: 3x3 matrix whose column c is the LPS unit vector of index axis c (i, j, k).
        meta: free-form description of where it came from (file name, checksum, series summary, ...).
        source: the acquisition behind an image read from DICOM (headers, echoes, timing), so that later stages
            (T2, DICOM-SEG) need not read the files again; None for files without it and for derived volumes.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    meta: dict = field(default_factory=dict, compare=False)
    source: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume needs a 3-D array, got shape {self.array.shape}")
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        object.__setattr__(self, "direction", np.asarray(self.direction, dtype=float).reshape(3, 3))

    # --- geometry -------------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int, int]:
        """Grid size in ITK (i, j, k) order."""
        nk, nj, ni = self.array.shape
        return int(ni), int(nj), int(nk)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous ITK index (i, j, k, 1) to LPS mm."""
        out = np.eye(4)
        out[:3, :3] = self.direction @ np.diag(self.spacing)
        out[:3, 3] = self.origin
        return out

    def index_to_physical(self, ijk: np.ndarray) -> np.ndarray:
        """(N, 3) continuous ITK indices -> (N, 3) LPS mm."""
        a = self.affine
        return np.asarray(ijk, dtype=float) @ a[:3, :3].T + a[:3, 3]

    def physical_coordinate(self, ijk: np.ndarray, axis: int) -> np.ndarray:
        """One LPS coordinate (``axis`` 0: x, 1: y, 2: z; mm) of (N, 3) ITK indices: a third of the work of
        :meth:`index_to_physical`, and no (N, 3) float copy of the indices."""
        row = self.affine[axis]
        return row[3] + ijk[:, 0] * row[0] + ijk[:, 1] * row[1] + ijk[:, 2] * row[2]

    def physical_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) LPS mm -> (N, 3) continuous ITK indices."""
        a = self.affine
        return (np.asarray(xyz, dtype=float) - a[:3, 3]) @ np.linalg.inv(a[:3, :3]).T

    def voxel_points(self, mask: np.ndarray) -> np.ndarray:
        """LPS mm centres of the voxels where ``mask`` (numpy order) is true, shape (N, 3), in C order."""
        return self.index_to_physical(mask_indices(mask)[:, ::-1])

    @property
    def orientation(self) -> str:
        """Three-letter code of the patient direction each index axis points to, e.g. 'LPS' or 'PIR'."""
        letters = (("L", "R"), ("P", "A"), ("S", "I"))
        code = ""
        for c in range(3):
            axis = self.direction[:, c]
            dominant = int(np.argmax(np.abs(axis)))
            code += letters[dominant][0 if axis[dominant] > 0 else 1]
        return code

    def same_grid(self, other: Volume, *, tol_mm: float = 1e-3, tol_dir: float = 1e-4) -> list[str]:
        """Differences between the two voxel grids, empty when they match."""
        problems = []
        if self.size != other.size:
            problems.append(f"size {self.size} vs {other.size}")
        if not np.allclose(self.spacing, other.spacing, atol=tol_mm, rtol=1e-4):
            problems.append(f"spacing {_fmt(self.spacing)} vs {_fmt(other.spacing)} mm")
        if not np.allclose(self.origin, other.origin, atol=max(tol_mm, 1e-3 * max(self.spacing))):
            problems.append(f"origin {_fmt(self.origin)} vs {_fmt(other.origin)} mm")
        if not np.allclose(self.direction, other.direction, atol=tol_dir):
            problems.append(f"orientation {self.orientation} vs {other.orientation}")
        return problems

    def with_array(self, array: np.ndarray, **meta) -> Volume:
        """Same geometry, new voxels (a derived volume: the acquisition ``source`` is not carried over)."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} does not match {self.array.shape}")
        return replace(self, array=array, meta={**self.meta, **meta}, source=None)

    def with_meta(self, **meta) -> Volume:
        """Same voxels and source, more description."""
        return replace(self, meta={**self.meta, **meta})

    def geometry_dict(self) -> dict:
        return {
            "size": list(self.size),
            "spacing_mm": [round(s, 6) for s in self.spacing],
            "origin_mm": [round(o, 4) for o in self.origin],
            "direction": [round(float(d), 6) for d in self.direction.ravel()],
            "orientation": self.orientation,
        }

    # --- SimpleITK bridge -----------------------------------------------------------------------
    def to_sitk(self):
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(self.array)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(tuple(self.direction.ravel()))
        return image

    @classmethod
    def from_sitk(cls, image, **meta) -> Volume:
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3-D image, got {image.GetDimension()}-D")
        return cls(
            array=sitk.GetArrayFromImage(image),
            spacing=image.GetSpacing(),
            origin=image.GetOrigin(),
            direction=np.array(image.GetDirection()).reshape(3, 3),
            meta=dict(meta),
        )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box (index slices, numpy order) holding every true voxel of ``mask``; None if there is none.

    Found from the mask's projections on each axis: a few milliseconds on a 384x384x160 grid, where
    ``np.argwhere`` needs tens to hundreds (it lists every voxel).
    """
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if not len(hits):
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def grown_box(box: tuple[slice, ...], margin, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` widened by ``margin`` voxels on each side (one number, or one per axis), kept inside an array of
    ``shape``."""
    margins = np.broadcast_to(np.asarray(margin, dtype=int), (len(box),))
    return tuple(
        slice(max(0, s.start - int(m)), min(n, s.stop + int(m))) for s, m, n in zip(box, margins, shape, strict=True)
    )


def mask_indices(mask: np.ndarray) -> np.ndarray:
    """``np.argwhere(mask)`` (same rows, same C order), listing only the mask's bounding box."""
    box = bounding_box(mask)
    if box is None:
        return np.zeros((0, mask.ndim), dtype=np.intp)
    return np.argwhere(mask[box]) + np.array([s.start for s in box])


def erode_faces(mask: np.ndarray, axes: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    """``ndimage.binary_erosion(mask, cross)`` for the face-neighbour cross over ``axes`` (all three: the
    6-neighbourhood), outside the array counting as background: a voxel stays when it and both its neighbours along
    every axis in ``axes`` are set. Three shifted ANDs over the array, 10-15x faster than scipy's general erosion
    on a bone's box."""
    mask = mask.astype(bool, copy=False)  # the ANDs below are logical only on booleans (2 & 1 is 0)
    out = mask.copy()
    for axis in axes:
        inner = _along(axis, slice(1, -1), mask.ndim)
        out[inner] &= mask[_along(axis, slice(None, -2), mask.ndim)] & mask[_along(axis, slice(2, None), mask.ndim)]
        out[_along(axis, 0, mask.ndim)] = False  # the neighbour outside the array is background
        out[_along(axis, -1, mask.ndim)] = False
    return out


def dilate_cube(mask: np.ndarray) -> np.ndarray:
    """``ndimage.binary_dilation(mask, np.ones((3,) * ndim))``, the 26-neighbour (3-D) dilation, within the array.
    The cube is the sum of three segments, so it is three one-axis dilations in turn, each two shifted ORs."""
    out = mask.astype(bool, copy=True)
    for axis in range(mask.ndim):
        step = out.copy()
        step[_along(axis, slice(1, None), mask.ndim)] |= out[_along(axis, slice(None, -1), mask.ndim)]
        step[_along(axis, slice(None, -1), mask.ndim)] |= out[_along(axis, slice(1, None), mask.ndim)]
        out = step
    return out


def _along(axis: int, index, ndim: int) -> tuple:
    """An index that takes ``index`` along ``axis`` and everything along the other axes."""
    return tuple(index if a == axis else slice(None) for a in range(ndim))


def value_counts(data: np.ndarray, *, chunk: int = 1 << 20) -> np.ndarray:
    """``np.bincount(data.ravel())`` for non-negative integer voxels, counted a chunk at a time: bincount widens
    its input to 64 bits, which for a whole 384x384x160 grid means a 190 MB copy and most of a second."""
    flat = data.ravel()
    counts = np.zeros(int(flat.max(initial=0)) + 1, dtype=np.int64)
    for start in range(0, flat.size, chunk):
        counts += np.bincount(flat[start : start + chunk], minlength=len(counts))
    return counts
