"""After the network: clean-up of the label map, and the check that what was found is a knee at all."""

from __future__ import annotations

import numpy as np

from .. import labels as L
from ..errors import EmptySegmentationError, InvalidInputError
from ..io.sanity import check_not_blank
from ..volume import Volume, bounding_box, erode_faces

#: A segmentation counts as a knee only if, after clean-up, femur and tibia each have at least MIN_BONE_MM3, femoral
#: and tibial cartilage at least the volumes below, and both bones are solid (a one-voxel erosion removes at most
#: MAX_BONE_SHELL_FRACTION of them). Real knees in a DESS field of view: bones 40-150 cm^3, femoral cartilage
#: 5-15 cm^3, tibial 1-4 cm^3, shell fraction < 0.1. A network shown something else labels bright blobs as bone
#: without cartilage (a ball) or paints spongy fragments of everything (noise); these checks catch both.
MIN_BONE_MM3 = 5000.0
MIN_FEMORAL_CARTILAGE_MM3 = 500.0
MIN_TIBIAL_CARTILAGE_MM3 = 200.0
MAX_BONE_SHELL_FRACTION = 0.35

#: Cartilage and meniscus pieces smaller than this fraction of the structure's largest piece are removed as noise.
#: Larger pieces are kept (and flagged by the QC as a split structure): femoral cartilage can genuinely come in
#: pieces (a denuded trochlea; the synthetic phantom's two condyles), and keeping only the largest piece, as the
#: predecessor does for every label, would silently delete a whole condyle's cartilage.
SOFT_TISSUE_MIN_PIECE_FRACTION = 0.10


def postprocess(labels: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Bones: largest connected component, holes filled. Cartilage, menisci: small stray pieces removed.

    Connectivity is 26-neighbour. Args:
        labels: canonical label array (any axis order), uint8; not modified.
    Returns:
        The cleaned array and, per structure, the number of voxels changed (negative = removed).
    """
    from scipy import ndimage

    out = labels.copy()
    changes: dict[str, int] = {}
    boxes = ndimage.find_objects(out, max_label=max(L.CANONICAL.values()))
    for name in L.STRUCTURES:
        value = L.CANONICAL[name]
        box = boxes[value - 1] if value <= len(boxes) else None
        if box is None:
            continue
        view = out[box]
        mask = view == value
        components, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
        if n < 2:
            continue
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        minimum = sizes.max() if name in L.BONES else SOFT_TISSUE_MIN_PIECE_FRACTION * sizes.max()
        keep = sizes >= minimum
        keep[0] = False
        drop = mask & ~keep[components]
        if drop.any():
            view[drop] = 0
            changes[name] = -int(drop.sum())
    for name in L.BONES:
        value = L.CANONICAL[name]
        mask = out == value
        box = bounding_box(mask)
        if box is None:
            continue
        filled = ndimage.binary_fill_holes(mask[box])
        added = filled & ~mask[box]
        if added.any():
            # As upstream: enclosed voxels become bone, whatever they were labelled (holes inside a bone are
            # misclassified marrow, never cartilage or meniscus).
            out[box][added] = value
            changes[name] = changes.get(name, 0) + int(added.sum())
    return out, changes


def check_image(image: Volume) -> None:
    if not np.issubdtype(image.array.dtype, np.number):
        raise InvalidInputError(f"The image has a non-numeric voxel type ({image.array.dtype}).")
    finite = np.isfinite(image.array)
    if not finite.all():
        raise InvalidInputError(f"The image has {int((~finite).sum())} NaN/infinite voxels; fix or re-export it.")
    check_not_blank(image, "The image")


def knee_problems(
    canonical: np.ndarray, voxel_mm3: float, spacing_kji: tuple[float, float, float] | None = None
) -> list[str]:
    """Why a canonical label array does not look like a knee (empty list: it does). See MIN_BONE_MM3.

    With ``spacing_kji`` (the array's spacing, numpy order) the solidity erosion skips axes more than twice as
    coarse as the finest: one voxel of a 5 mm slice is not a shell, and thick-slice bones would look hollow.
    """
    axes = tuple(range(3))  # the erosion's neighbours: along every axis not too coarse for a one-voxel shell
    if spacing_kji is not None:
        axes = tuple(axis for axis, step in enumerate(spacing_kji) if step <= 2.0 * min(spacing_kji))

    def volume(*names: str) -> float:
        return sum(float(np.count_nonzero(canonical == L.CANONICAL[n])) for n in names) * voxel_mm3

    problems = []
    for bone in (L.FEMUR, L.TIBIA):
        mm3 = volume(bone)
        if mm3 < MIN_BONE_MM3:
            problems.append(f"{bone} {mm3 / 1000:.1f} cm3 (needs {MIN_BONE_MM3 / 1000:g})")
            continue
        mask = canonical == L.CANONICAL[bone]
        box = bounding_box(mask)
        if box is None:  # not reached: the volume check above needs voxels
            continue
        solid = np.pad(mask[box], 1)
        shell = 1.0 - np.count_nonzero(erode_faces(solid, axes)) / np.count_nonzero(solid)
        if shell > MAX_BONE_SHELL_FRACTION:
            problems.append(f"{bone} is fragmented, not a solid bone ({shell:.0%} of it is surface)")
    cartilage = {
        "femoral cartilage": (volume(L.FEMORAL_CARTILAGE), MIN_FEMORAL_CARTILAGE_MM3),
        "tibial cartilage": (volume(L.MEDIAL_TIBIAL_CARTILAGE, L.LATERAL_TIBIAL_CARTILAGE), MIN_TIBIAL_CARTILAGE_MM3),
    }
    for name, (mm3, minimum) in cartilage.items():
        if mm3 < minimum:
            problems.append(f"{name} {mm3 / 1000:.2f} cm3 (needs {minimum / 1000:g})")
    return problems


def check_knee_found(canonical: np.ndarray, image: Volume) -> None:
    problems = knee_problems(canonical, image.voxel_volume_mm3, image.spacing[::-1])
    if problems:
        raise EmptySegmentationError(
            "No knee structures found in the image: " + "; ".join(problems) + ". Check that it is a knee MRI of the "
            "kind the model was trained on (the published model: sagittal 3-D DESS/qDESS; the demo model: "
            "synthetic knees only)."
        )
