"""Upstream's clean-up of a Goyal label map, in the models' native labels: the largest piece of every label, then
the holes of the three bones filled.

As DOSMA does it (``get_connected_segments``, ``fill_holes``): pieces are face-connected (6-neighbour, scipy's
default), every label keeps only its largest piece (the first on a tie), and each bone (7 femur, 8 tibia,
9 patella, in that order) then takes every voxel it encloses, whatever was labelled there. KneeScope's own
clean-up for nnU-Net (``segmentation.postprocess``) differs on purpose (26-neighbour, keeps large cartilage pieces);
the Goyal path keeps upstream's so that its label maps match the predecessor's.
"""

from __future__ import annotations

import numpy as np

from ... import labels as L

#: Native bone labels, in the order upstream fills them.
BONE_LABELS = tuple(L.NATIVE[b] for b in L.BONES)
N_NATIVE = len(L.STRUCTURES)


def keep_largest_pieces(labels: np.ndarray) -> dict[int, int]:
    """In place: every label keeps its largest 6-connected piece. Returns the voxels removed per label."""
    from scipy import ndimage

    removed: dict[int, int] = {}
    boxes = ndimage.find_objects(labels, max_label=N_NATIVE)
    for value, box in enumerate(boxes, start=1):
        if box is None:
            continue
        view = labels[box]
        mask = view == value
        pieces, n = ndimage.label(mask)
        if n < 2:
            continue
        sizes = np.bincount(pieces.ravel())
        sizes[0] = 0
        drop = mask & (pieces != int(np.argmax(sizes)))
        view[drop] = 0
        removed[value] = int(drop.sum())
    return removed


def fill_bone_holes(labels: np.ndarray) -> dict[int, int]:
    """In place: each bone label takes the voxels it encloses (6-connected background). Returns voxels added."""
    from scipy import ndimage

    added: dict[int, int] = {}
    for value in BONE_LABELS:
        mask = labels == value
        if not mask.any():
            continue
        box = ndimage.find_objects(mask.astype(np.uint8))[0]
        inside = ndimage.binary_fill_holes(mask[box]) & ~mask[box]
        if inside.any():
            labels[box][inside] = value
            added[value] = int(inside.sum())
    return added


def clean_native(labels: np.ndarray) -> tuple[np.ndarray, dict]:
    """A cleaned copy of a native label map and what changed (for provenance)."""
    out = np.ascontiguousarray(labels, dtype=np.uint8).copy()
    removed = keep_largest_pieces(out)
    added = fill_bone_holes(out)
    return out, {
        "method": "largest 6-connected piece per label, then bone holes filled (femur, tibia, patella), as DOSMA",
        "voxels_removed": {str(k): v for k, v in removed.items()},
        "bone_voxels_added": {str(k): v for k, v in added.items()},
    }


def native_to_canonical(labels: np.ndarray) -> np.ndarray:
    """Native (DOSMA tissue order) -> canonical label values; anything else becomes background."""
    lut = np.zeros(256, dtype=np.uint8)
    for native, canonical in L.NATIVE_SCHEME.remap_table().items():
        lut[native] = canonical
    return lut[labels]
