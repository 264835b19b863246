"""Is this label map anatomically plausible? Checks that need no network, so given label maps get them too.

Per structure: volume, mediolateral bone width, pieces, cartilage lying on its bone, cartilage thickness (mean and
95th percentile per plate), the knee check of the segmenter (solid bones, enough cartilage), and the shape model's
reconstruction distance when it ran. For a segmentation also the knee's pose in the image (``pose_findings``): a
network shown a knee rotated far from its training pose can be confidently wrong (it swaps medial and lateral).
Each check compares against ``reference_ranges`` and yields a :class:`Finding` at level "review" or "failed" when
outside the usual or the possible range.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from .. import labels as L
from ..morphometry.qc import StructureStats, label_boxes
from ..morphometry.summary import RegionResult
from ..segmentation.postprocess import knee_problems
from ..volume import Volume, dilate_cube, grown_box
from . import reference_ranges as R

REVIEW, FAILED = "review", "failed"
#: Cartilage plate (as reported in results.json "cartilage") -> its structure.
PLATE_STRUCTURE = {
    "femoral": L.FEMORAL_CARTILAGE,
    "medial_tibial": L.MEDIAL_TIBIAL_CARTILAGE,
    "lateral_tibial": L.LATERAL_TIBIAL_CARTILAGE,
    "patellar": L.PATELLAR_CARTILAGE,
}
_CARTILAGE_BONE = {c: bone for bone, cs in L.BONE_CARTILAGE.items() for c in cs}
#: A bone's second piece at least this fraction of its largest makes it "in pieces" (as morphometry.qc).
BONE_PIECE_FRACTION = 0.01
#: Larger masks are subsampled (every 2nd voxel per axis) for the width: a percentile extent needs no more.
_WIDTH_SUBSAMPLE_ABOVE = 2_000_000


@dataclass(frozen=True)
class Finding:
    """One plausibility problem.

    Attributes:
        structure: the structure it concerns (None: the knee as a whole).
        check: 'missing', 'volume', 'width', 'pieces', 'attachment', 'thickness', 'knee', 'pose', 'shape_model'.
        level: 'review' or 'failed'.
        reason: a short phrase for people ("tibia volume outside the usual range").
        value: the measured value (None when not a number).
        usual: the usual range as text.
    """

    structure: str | None
    check: str
    level: str
    reason: str
    value: float | None = None
    usual: str = ""

    def to_dict(self) -> dict:
        return {
            "structure": self.structure,
            "check": self.check,
            "level": self.level,
            "reason": self.reason,
            "value": None if self.value is None else round(float(self.value), 4),
            "usual": self.usual,
        }


def plausibility_findings(
    labels: Volume,
    structures: Mapping[str, StructureStats],
    cartilage: Mapping[str, RegionResult],
    *,
    assessed: Collection[str] = L.STRUCTURES,
    shape_assd_mm: float | None = None,
) -> list[Finding]:
    """Every plausibility problem of a canonical label map (empty: nothing unusual).

    Args:
        labels: the canonical label map.
        structures: its per-structure statistics (``morphometry.qc.structure_stats``).
        cartilage: its per-plate thickness and volume (``Morphometry.cartilage``).
        assessed: the structures the label map is meant to have (a given map's scheme may name fewer).
        shape_assd_mm: the shape model's bone reconstruction distance, when the fit ran.
    """
    findings: list[Finding] = []
    for name in L.STRUCTURES:
        if name in assessed:
            findings += _structure_findings(labels, name, structures[name])
    for plate, structure in PLATE_STRUCTURE.items():
        region = cartilage.get(plate)
        if structure in assessed and structures[structure].present and region is not None:
            findings += _thickness_findings(plate, structure, region)
    if {L.FEMUR, L.TIBIA} <= set(assessed):  # the segmenter's knee check: solid bones, enough cartilage
        problems = knee_problems(labels.array, labels.voxel_volume_mm3, labels.spacing[::-1])
        findings += [Finding(None, "knee", FAILED, f"not a knee: {problem}") for problem in problems]
    if shape_assd_mm is not None:
        unlike = _ranged(L.FEMUR, "shape_model", "femur unlike the shape model", shape_assd_mm, R.SHAPE_ASSD_MM, "mm")
        findings += [unlike] if unlike is not None else []
    return findings


def _structure_findings(labels: Volume, name: str, stats: StructureStats) -> list[Finding]:
    pretty = L.structure_display_name(name).lower()
    if not stats.present or stats.volume_mm3 is None:
        return [Finding(name, "missing", REVIEW if name in L.MENISCI else FAILED, f"{pretty} missing")]
    out = [
        _ranged(name, "volume", f"{pretty} volume outside the usual range", stats.volume_mm3, R.VOLUME_MM3[name], "mm3")
    ]
    if name in R.WIDTH_MM:
        width = bone_width_mm(labels, name, stats.box)
        out.append(_ranged(name, "width", f"{pretty} width outside the usual range", width, R.WIDTH_MM[name], "mm"))
    if name in R.MAX_PIECES:
        pieces, attached = pieces_and_attachment(labels, name, stats.box)
        if pieces > R.MAX_PIECES[name]:
            out.append(
                Finding(name, "pieces", REVIEW, f"{pretty} in {pieces} pieces", pieces, f"<= {R.MAX_PIECES[name]}")
            )
        out.append(
            _ranged(name, "attachment", f"{pretty} off its bone", attached, R.ATTACHED_FRACTION, "of its volume")
        )
    elif stats.n_components > 1 and stats.largest_component_fraction is not None:
        largest_mm3 = stats.volume_mm3 * stats.largest_component_fraction
        if stats.second_component_mm3 >= BONE_PIECE_FRACTION * largest_mm3:
            out.append(
                Finding(name, "pieces", REVIEW, f"{pretty} in {stats.n_components} pieces", stats.n_components, "1")
            )
    return [f for f in out if f is not None]


def _thickness_findings(plate: str, structure: str, region: RegionResult) -> list[Finding]:
    pretty = L.structure_display_name(structure).lower()
    stats = region.thickness_mm
    if stats is None:
        return [Finding(structure, "thickness", REVIEW, f"{pretty} thickness not measurable", None, "on its bone")]
    out = [
        _ranged(structure, "thickness", f"{pretty} thickness outside the usual range", stats.mean,
                R.MEAN_THICKNESS_MM[plate], "mm (mean)"),
        _ranged(structure, "thickness", f"{pretty} locally too thick", stats.p95, R.P95_THICKNESS_MM, "mm (p95)"),
    ]  # fmt: skip
    return [f for f in out if f is not None]


def _ranged(
    structure: str | None, check: str, reason: str, value: float | None, usual: R.Range, unit: str
) -> Finding | None:
    """A finding when ``value`` lies outside ``usual`` (None inside it, or when there is no value)."""
    level = None if value is None else usual.level(value)
    return None if level is None else Finding(structure, check, level, reason, value, usual.describe(unit))


def pose_findings(labels: Volume) -> list[Finding]:
    """For a segmentation: is the knee rotated far from the image axes (the pose the network was trained on)?"""
    degrees = pose_degrees(labels)
    unusual = _ranged(None, "pose", "knee rotated far from the training pose", degrees, R.POSE_DEGREES, "degrees")
    return [] if unusual is None else [unusual]


def pose_degrees(labels: Volume) -> float | None:
    """The larger angle (degrees) between the knee's long or mediolateral axis and the nearest image axis; None
    when the structures that define them are missing."""
    from ..morphometry.anatomy import centroid

    ends = [
        (centroid(labels, L.FEMUR), centroid(labels, L.TIBIA)),
        (centroid(labels, L.MEDIAL_TIBIAL_CARTILAGE), centroid(labels, L.LATERAL_TIBIAL_CARTILAGE)),
    ]
    angles = []
    for a, b in ends:
        if a is None or b is None or np.allclose(a, b):
            return None
        axis = (a - b) / np.linalg.norm(a - b)
        nearest = float(np.max(np.abs(labels.direction.T @ axis)))  # cosine to the closest image axis
        angles.append(float(np.degrees(np.arccos(min(1.0, nearest)))))
    return max(angles)


def bone_width_mm(labels: Volume, bone: str, box: tuple[slice, ...] | None = None) -> float | None:
    """The bone's extent along the patient's left-right axis (LPS x), 0.5th to 99.5th percentile of its voxels.

    ``box``: the bone's bounding box (``structure_box``), when the caller has it: only that part is searched.
    """
    box = box or structure_box(labels, bone)
    if box is None:
        return None
    mask = labels.array[box] == L.CANONICAL[bone]
    count = int(np.count_nonzero(mask))
    if count == 0:
        return None
    step = 2 if count > _WIDTH_SUBSAMPLE_ABOVE else 1
    kji = np.argwhere(mask[::step, ::step, ::step]) * step + np.array([s.start for s in box])
    x = labels.physical_coordinate(kji[:, ::-1], 0)
    low, high = np.percentile(x, [0.5, 99.5])
    return float(high - low) + labels.spacing[int(np.argmax(np.abs(labels.direction[0])))]


def structure_box(labels: Volume, structure: str) -> tuple[slice, ...] | None:
    """The bounding box (array index slices) of one structure, None when absent."""
    return label_boxes(labels.array).get(structure)


def pieces_and_attachment(
    labels: Volume, structure: str, box: tuple[slice, ...] | None = None
) -> tuple[int, float | None]:
    """Pieces of ``structure`` of at least PIECE_FRACTION of its largest (26-connected), and for cartilage the
    share of its volume in pieces that touch its bone (None for menisci). ``box`` as for :func:`bone_width_mm`."""
    from scipy import ndimage

    box = box or structure_box(labels, structure)
    if box is None:
        return 0, None
    padded = grown_box(box, 1, labels.array.shape)
    pieces, _ = ndimage.label(labels.array[padded] == L.CANONICAL[structure], structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    significant = int(np.count_nonzero(sizes >= R.PIECE_FRACTION * sizes.max()))
    bone = _CARTILAGE_BONE.get(structure)
    if bone is None:
        return significant, None
    near_bone = dilate_cube(labels.array[padded] == L.CANONICAL[bone])  # its 26 neighbours
    touching = np.unique(pieces[near_bone & (pieces > 0)])
    return significant, float(sizes[touching].sum() / sizes.sum())
