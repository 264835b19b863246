"""A follow-up visit of a synthetic knee: known cartilage change per region, and the knee moved rigidly.

The follow-up is the baseline's phantom with some regions thicker or thinner (``changes``), scanned with the knee
rotated about its centre and translated (as a knee never lies the same way twice in the coil). Stored exactly by
default: the same voxels as an unmoved phantom, with the motion put in the grid's direction and origin, so any
difference a comparison finds besides the known change is the comparison's own error. With ``resample=True`` the
moved knee is voxelised afresh on a grid of the scanner's axes (optionally another spacing), shifted by a fraction of
a voxel: what a real second scan looks like, partial-volume effects and field-of-view edges included.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..labels import CARTILAGE_REGIONS
from ..volume import Volume
from .phantom import Phantom, PhantomSpec, make_grid, make_phantom

#: Regions whose thickness a follow-up can change, and the PhantomSpec field that sets it.
CHANGEABLE = {
    "femoral": "femoral_mm",
    "medial_tibial": "medial_tibial_mm",
    "lateral_tibial": "lateral_tibial_mm",
    "patellar": "patellar_mm",
}
#: Grid offset of a resampled follow-up, in voxels: not a whole number, so no voxel centre repeats the baseline's.
RESAMPLE_OFFSET_VOXELS = (0.37, 0.29, 0.43)


@dataclass(frozen=True)
class FollowUp:
    """A synthetic follow-up visit and its truth.

    Attributes:
        phantom: the follow-up's label map and spec (with the changed thicknesses).
        motion: 4x4 rigid transform (LPS mm) taking the baseline knee to where it lies at follow-up.
        changes_mm: true thickness change (follow-up minus baseline) of every reported region, 0 where unchanged.
        resampled: voxelised afresh on a new grid (False: the baseline's voxels with a moved geometry).
    """

    phantom: Phantom
    motion: np.ndarray
    changes_mm: dict[str, float]
    resampled: bool


def motion_matrix(
    rotation_deg: tuple[float, float, float], translation_mm: tuple[float, float, float], centre: np.ndarray
) -> np.ndarray:
    """4x4 rigid motion: rotation about the patient x (L), y (P), then z (S) axis through ``centre``, then a shift."""
    rotation = np.eye(3)
    for axis, angle in enumerate(np.radians(np.asarray(rotation_deg, float))):
        c, s = np.cos(angle), np.sin(angle)
        turn = np.eye(3)
        a, b = [i for i in range(3) if i != axis]
        turn[a, a], turn[a, b], turn[b, a], turn[b, b] = c, -s, s, c
        rotation = turn @ rotation
    motion = np.eye(4)
    motion[:3, :3] = rotation
    motion[:3, 3] = np.asarray(centre, float) - rotation @ np.asarray(centre, float) + np.asarray(translation_mm, float)
    return motion


def changed_spec(spec: PhantomSpec, changes: dict[str, float]) -> PhantomSpec:
    """The spec with each named region's thickness changed by the given mm (tibial compartments separately)."""
    unknown = sorted(set(changes) - set(CHANGEABLE))
    if unknown:
        raise ValueError(f"cannot change {unknown}: the synthetic knee changes {sorted(CHANGEABLE)}")
    tibial = spec.compartment_tibial_mm
    current = {
        "femoral": spec.femoral_mm,
        "medial_tibial": tibial["medial"],
        "lateral_tibial": tibial["lateral"],
        "patellar": spec.patellar_mm,
    }
    values: dict[str, Any] = {CHANGEABLE[region]: current[region] + delta for region, delta in changes.items()}
    thinnest = min([current[r] + changes.get(r, 0.0) for r in CHANGEABLE])
    if thinnest <= 0.3:
        raise ValueError(f"a change leaves {thinnest:.2f} mm of cartilage; keep every region above 0.3 mm")
    return dataclasses.replace(spec, **values)


def make_followup(
    baseline: PhantomSpec,
    *,
    changes: dict[str, float] | None = None,
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0),
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
    resample: bool = False,
    spacing: tuple[float, float, float] | None = None,
) -> FollowUp:
    """The follow-up visit of the knee ``baseline`` describes.

    Args:
        changes: region -> thickness change in mm (regions of ``CHANGEABLE``; femoral changes all its subregions).
        rotation_deg: rotation about the patient x, y, z axes through the knee's centre, in that order.
        translation_mm: shift of the knee (LPS mm), after the rotation.
        resample: voxelise the moved knee on a fresh grid instead of moving the baseline's grid.
        spacing: voxel size of the fresh grid (default the baseline's); only with ``resample``.
    """
    changes = dict(changes or {})
    spec = changed_spec(baseline, changes)
    motion = motion_matrix(rotation_deg, translation_mm, np.asarray(spec.centre_lps))
    if resample:
        grid = fresh_grid(spec, motion, spacing or spec.spacing)
        phantom = make_phantom(spec, grid=grid, motion=motion)
    else:  # the baseline's grid, so unchanged anatomy is voxelised exactly as at baseline
        unmoved = make_phantom(spec, grid=make_grid(baseline))
        phantom = Phantom(moved_volume(unmoved.labels, motion), spec)
    truth = dict.fromkeys(CARTILAGE_REGIONS, 0.0)
    for region, delta in changes.items():
        for reported in truth:
            if reported == region or (region == "femoral" and reported.startswith("femoral")):
                truth[reported] = float(delta)
    name = f"synthetic_{spec.side}_knee_followup"
    labels = phantom.labels.with_meta(name=name, followup_motion=motion.round(9).tolist())
    return FollowUp(Phantom(labels, spec), motion, truth, resample)


def moved_volume(volume: Volume, motion: np.ndarray) -> Volume:
    """The same voxels with the grid moved rigidly: direction and origin carry the motion exactly."""
    direction = motion[:3, :3] @ volume.direction
    origin = motion[:3, :3] @ np.asarray(volume.origin) + motion[:3, 3]
    return Volume(volume.array, volume.spacing, tuple(origin), direction, meta=dict(volume.meta))


def fresh_grid(spec: PhantomSpec, motion: np.ndarray, spacing: tuple[float, float, float]) -> Volume:
    """A grid along the scanner's axes (the spec's orientation) that covers the moved knee's field of view."""
    unmoved = make_grid(spec)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float) * (
        np.asarray(unmoved.size) - 1
    )
    moved = unmoved.index_to_physical(corners) @ motion[:3, :3].T + motion[:3, 3]
    direction = unmoved.direction
    in_axes = moved @ direction  # corner coordinates along the grid's axes (direction is orthonormal)
    lo, hi = in_axes.min(0), in_axes.max(0)
    step = np.asarray(spacing, float)
    size = np.ceil((hi - lo) / step).astype(int) + 1
    origin = direction @ (lo - np.asarray(RESAMPLE_OFFSET_VOXELS) * step)
    return Volume(np.zeros(size[::-1], dtype=np.uint8), tuple(step), tuple(origin), direction, meta={"synthetic": True})
