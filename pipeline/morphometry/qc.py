"""Per-structure measurements and quality-control warnings on a canonical label map."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import labels as L
from ..volume import Volume

#: Plausible adult volumes (mm^3). Bones have only a lower bound: how much shaft is imaged depends on the field.
PLAUSIBLE_MM3: dict[str, tuple[float, float | None]] = {
    L.FEMUR: (10_000, None),
    L.TIBIA: (8_000, None),
    L.PATELLA: (3_000, 40_000),
    L.FEMORAL_CARTILAGE: (1_500, 30_000),
    L.MEDIAL_TIBIAL_CARTILAGE: (250, 6_000),
    L.LATERAL_TIBIAL_CARTILAGE: (250, 6_000),
    L.PATELLAR_CARTILAGE: (400, 9_000),
    L.MEDIAL_MENISCUS: (400, 8_000),
    L.LATERAL_MENISCUS: (400, 8_000),
}
#: A second piece at least this fraction of the largest makes a structure "split".
SPLIT_FRACTION = {"bone": 0.01, "soft": 0.10}


@dataclass(frozen=True)
class StructureStats:
    """Presence, volume and connectivity of one structure."""

    present: bool
    label: int
    volume_mm3: float | None
    n_components: int
    largest_component_fraction: float | None
    second_component_mm3: float = 0.0
    #: Its bounding box in the label array (numpy index slices; None when absent), for later stages to search in
    #: (not written out).
    box: tuple[slice, ...] | None = None

    def to_dict(self) -> dict:
        return {
            "present": self.present,
            "label": self.label,
            "volume_mm3": None if self.volume_mm3 is None else round(self.volume_mm3, 1),
            "n_components": self.n_components,
            "largest_component_fraction": None
            if self.largest_component_fraction is None
            else round(self.largest_component_fraction, 4),
            "second_component_mm3": round(self.second_component_mm3, 1),
        }


def label_boxes(labels: np.ndarray) -> dict[str, tuple[slice, ...]]:
    """Every canonical structure's bounding box (index slices) in a canonical label array, found in one pass over
    it; absent structures are left out."""
    from scipy import ndimage

    boxes = ndimage.find_objects(labels)
    return {
        name: boxes[value - 1]
        for name, value in L.CANONICAL.items()
        if value - 1 < len(boxes) and boxes[value - 1] is not None
    }


def structure_stats(labels: Volume) -> dict[str, StructureStats]:
    from scipy import ndimage

    out = {}
    boxes = label_boxes(labels.array)
    structure_26 = np.ones((3, 3, 3), dtype=bool)
    for name in L.STRUCTURES:
        value = L.CANONICAL[name]
        if name not in boxes:
            out[name] = StructureStats(False, value, None, 0, None)
            continue
        components, n = ndimage.label(labels.array[boxes[name]] == value, structure_26)
        sizes = np.sort(np.bincount(components.ravel())[1:])[::-1]
        n_voxels = int(sizes.sum())  # every voxel of the structure lies in one of its components
        second = float(sizes[1]) * labels.voxel_volume_mm3 if n > 1 else 0.0
        out[name] = StructureStats(
            True, value, n_voxels * labels.voxel_volume_mm3, int(n), float(sizes[0] / sizes.sum()), second, boxes[name]
        )
    return out


def qc_warnings(stats: dict[str, StructureStats], ignored_values: dict[int, int]) -> list[str]:
    """Human-readable warnings: missing, implausible, split structures, ignored labels, a likely wrong scheme."""
    warnings = []
    for name, s in stats.items():
        pretty = L.structure_display_name(name)
        if not s.present or s.volume_mm3 is None or s.largest_component_fraction is None:
            warnings.append(f"{pretty} not found in the label map; its measurements are empty.")
            continue
        low, high = PLAUSIBLE_MM3[name]
        if s.volume_mm3 < low:
            warnings.append(f"{pretty} is implausibly small ({s.volume_mm3:.0f} mm3; expected at least {low:.0f}).")
        elif high is not None and s.volume_mm3 > high:
            warnings.append(f"{pretty} is implausibly large ({s.volume_mm3:.0f} mm3; expected at most {high:.0f}).")
        largest_mm3 = s.volume_mm3 * s.largest_component_fraction
        kind = "bone" if name in L.BONES else "soft"
        if s.n_components > 1 and s.second_component_mm3 >= SPLIT_FRACTION[kind] * largest_mm3:
            warnings.append(
                f"{pretty} is split into {s.n_components} pieces (second largest {s.second_component_mm3:.0f} mm3); "
                "check the segmentation."
            )
    if ignored_values:
        listed = ", ".join(f"{v} ({c} voxels)" for v, c in sorted(ignored_values.items()))
        warnings.append(f"Label values not named by the label scheme were ignored: {listed}.")
    bone_vol = sum(stats[b].volume_mm3 or 0 for b in L.BONES)
    cart_vol = sum(stats[c].volume_mm3 or 0 for c in L.CARTILAGES)
    if bone_vol and cart_vol > bone_vol:
        warnings.append(
            "Cartilage is larger than bone in total: the label scheme is probably wrong (native vs canonical?)."
        )
    return warnings
