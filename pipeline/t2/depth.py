"""Superficial / deep split of cartilage voxels by relative depth between the bone and the articular surface.

For every cartilage voxel, with distances in mm between voxel centres (Euclidean distance transforms with the
grid spacing, so anisotropic voxels are handled)::

    relative depth = d_bone / (d_bone + d_art)

- d_bone: distance to the nearest voxel of the bone this cartilage sits on (femur for femoral, tibia for medial
  and lateral tibial, patella for patellar cartilage);
- d_art: distance to the nearest voxel that is neither that bone nor that bone's cartilage (background, fluid,
  the opposing cartilage or meniscus): the articular side.

Relative depth below the threshold (0.5, as pymskt's ``break_cartilage_into_superficial_deep``) is deep
(region id + 100), otherwise superficial (region id + 200). At 0.5 the rule is simply d_bone < d_art, which does
not depend on where exactly between voxel centres the surfaces are taken to lie, so a slab of n voxels splits
into n/2 + n/2 (an odd middle voxel goes to superficial, as rel = 0.5 is "not below").

As with pymskt, whose articular surface is the cartilage mesh minus the vertices whose 10 mm normal rays meet bone,
the side walls at a plate's margin count as articular side, so voxels within about half a thickness of the margin lean
superficial. Away from the margins the split is exact on plates and shells.

Distances are computed in a box around each bone's cartilage, ``margin_mm`` wider on every side; a distance is
exact whenever it is below the margin, so the split is exact for cartilage up to 2 x margin (10 mm) thick.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .. import labels as L
from ..volume import Volume

logger = logging.getLogger(__name__)

DEEP_OFFSET = 100
SUPERFICIAL_OFFSET = 200
DEFAULT_MARGIN_MM = 5.0  # exact for cartilage up to 10 mm thick; human cartilage stays under ~7 mm


@dataclass(frozen=True)
class DepthSplit:
    """Depth labels (uint16, shape of the label array): region + 100 deep, region + 200 superficial, 0 elsewhere."""

    labels: np.ndarray
    notes: tuple[str, ...] = ()


def bone_relative_depth(
    labels: Volume, bone: str, *, margin_mm: float = DEFAULT_MARGIN_MM
) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray] | None:
    """Relative depth of the cartilage on one bone, computed in a box around it.

    Args:
        labels: canonical label map; its spacing (mm) scales the distances.
        bone: "femur", "tibia" or "patella" (keys of ``labels.BONE_CARTILAGE``).
        margin_mm: box margin around the cartilage; distances below it are exact.

    Returns:
        (box, cartilage mask in the box, relative depth float32 of the box, NaN off the cartilage), or None when
        the bone or its cartilage is absent, or nothing but bone and cartilage lies within the box.
    """
    from scipy import ndimage

    array = labels.array
    cartilage = np.isin(array, [L.CANONICAL[c] for c in L.BONE_CARTILAGE[bone]])
    if not cartilage.any():
        return None
    box = _box(cartilage, labels.spacing[::-1], margin_mm)
    cart = cartilage[box]
    bone_mask = array[box] == L.CANONICAL[bone]
    if not bone_mask.any():
        return None
    tissue = cart | bone_mask
    if tissue.all():
        return None  # no articular side in reach: cannot be split
    sampling = labels.spacing[::-1]  # numpy (k, j, i) order
    d_bone = ndimage.distance_transform_edt(~bone_mask, sampling=sampling)
    d_art = ndimage.distance_transform_edt(tissue, sampling=sampling)
    rel = np.full(cart.shape, np.nan, dtype=np.float32)
    total = d_bone[cart] + d_art[cart]
    rel[cart] = (d_bone[cart] / total).astype(np.float32)
    return box, cart, rel


def split_depth(
    labels: Volume, region_map: np.ndarray, *, threshold: float = 0.5, margin_mm: float = DEFAULT_MARGIN_MM
) -> DepthSplit:
    """Superficial/deep labels for every cartilage voxel that has a region id.

    Args:
        labels: canonical label map (bones 1-3, cartilage 4-7), array (nk, nj, ni).
        region_map: region id per voxel on the same grid (femoral 11-15 or 4, tibial 5/6, patellar 7; 0 elsewhere).
        threshold: relative depth below which a voxel is deep.
        margin_mm: see :func:`bone_relative_depth`.

    Returns:
        DepthSplit with uint16 labels region + 100 (deep) / region + 200 (superficial), 0 where not cartilage,
        without a region, or on a bone that is missing from the label map (said in ``notes``).
    """
    region_map = np.asarray(region_map)
    if region_map.shape != labels.array.shape:
        raise ValueError(f"region map shape {region_map.shape} differs from the label map {labels.array.shape}")
    out = np.zeros(labels.array.shape, dtype=np.uint16)
    notes = []
    for bone, cartilages in L.BONE_CARTILAGE.items():
        result = bone_relative_depth(labels, bone, margin_mm=margin_mm)
        if result is None:
            has_cartilage = np.isin(labels.array, [L.CANONICAL[c] for c in cartilages]).any()
            if has_cartilage:
                notes.append(
                    f"No superficial/deep split for the {bone}'s cartilage: the {bone} is missing from the "
                    "label map (or its cartilage has no articular side in view)."
                )
                logger.warning(notes[-1])
            continue
        box, cart, rel = result
        region = region_map[box]
        target = out[box]  # a view: writes land in ``out``
        use = cart & (region > 0)
        offset = np.where(rel[use] < threshold, DEEP_OFFSET, SUPERFICIAL_OFFSET)
        target[use] = region[use].astype(np.uint16) + offset.astype(np.uint16)
    return DepthSplit(out, tuple(notes))


def depth_labels(
    labels: Volume, region_map: np.ndarray, *, threshold: float = 0.5, margin_mm: float = DEFAULT_MARGIN_MM
) -> np.ndarray:
    """Just the uint16 depth label array of :func:`split_depth` (region + 100 deep, + 200 superficial)."""
    return split_depth(labels, region_map, threshold=threshold, margin_mm=margin_mm).labels


def _box(mask: np.ndarray, spacing_kji: tuple[float, ...], margin_mm: float) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by ``margin_mm`` on every side, clipped to the array."""
    nz = np.argwhere(mask)
    margin = np.ceil(margin_mm / np.asarray(spacing_kji)).astype(int)
    lo = np.maximum(nz.min(axis=0) - margin, 0)
    hi = np.minimum(nz.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
