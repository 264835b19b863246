"""Knee side and femoral cartilage subregions, from this knee's own anatomy (no reference image, no download).

Directions are patient directions (LPS): knee MRI is acquired roughly aligned with the patient axes, and using
them (rather than array axes) makes the result independent of how the array is stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import labels as L
from ..config import AnalysisConfig
from ..volume import Volume, mask_indices

MIN_SEPARATION_MM = 5.0


@dataclass(frozen=True)
class Laterality:
    """Which knee this is, and how that was decided."""

    side: str  # "right", "left" or "unknown"
    method: str
    medial_lateral_separation_mm: float | None = None

    @property
    def medial_sign(self) -> float:
        """+1 if medial is toward patient left (+x in LPS), as in a right knee."""
        return -1.0 if self.side == "left" else 1.0

    def to_dict(self) -> dict:
        sep = self.medial_lateral_separation_mm
        return {
            "side": self.side,
            "method": self.method,
            "medial_lateral_separation_mm": None if sep is None else round(sep, 2),
        }


def centroid(labels: Volume, structure: str) -> np.ndarray | None:
    kji = mask_indices(labels.array == L.CANONICAL[structure])
    if not len(kji):
        return None
    kji = kji.mean(axis=0)
    return labels.index_to_physical(kji[None, ::-1])[0]


def detect_laterality(labels: Volume) -> Laterality:
    """Right knee when the medial compartment lies toward the patient's left (+x, LPS) of the lateral one.

    Uses the tibial cartilage centroids, falling back to the menisci.
    """
    pairs = (
        (L.MEDIAL_TIBIAL_CARTILAGE, L.LATERAL_TIBIAL_CARTILAGE, "tibial cartilage centroids"),
        (L.MEDIAL_MENISCUS, L.LATERAL_MENISCUS, "meniscus centroids"),
    )
    for medial, lateral, method in pairs:
        cm, cl = centroid(labels, medial), centroid(labels, lateral)
        if cm is None or cl is None:
            continue
        dx = float(cm[0] - cl[0])
        if abs(dx) < MIN_SEPARATION_MM:
            continue
        return Laterality("right" if dx > 0 else "left", method, abs(dx))
    return Laterality("unknown", "medial and lateral tibial cartilage or menisci not both found apart")


def medial_lateral_midline(labels: Volume) -> float | None:
    """Patient x (mm) halfway between the medial and lateral compartments."""
    for medial, lateral in (
        (L.MEDIAL_TIBIAL_CARTILAGE, L.LATERAL_TIBIAL_CARTILAGE),
        (L.MEDIAL_MENISCUS, L.LATERAL_MENISCUS),
    ):
        cm, cl = centroid(labels, medial), centroid(labels, lateral)
        if cm is not None and cl is not None:
            return float((cm[0] + cl[0]) / 2)
    return None


def femoral_subregions(labels: Volume, laterality: Laterality, config: AnalysisConfig) -> tuple[np.ndarray, list[str]]:
    """Split femoral cartilage into trochlea, medial/lateral weight-bearing and medial/lateral posterior.

    In patient coordinates a = anterior, s = superior, m = medial:

    - notch: the anterior limit of the tibial articulation (95th percentile of a over tibial cartilage),
      standing in for the anterior end of the intercondylar notch, which sits above it in extension;
    - trochlea: a > notch;
    - weight-bearing: notch >= a >= notch - fraction * (notch - posterior end), and in the lowest
      ``weight_bearing_height_fraction`` of the cartilage's height (what wraps up the back is posterior);
    - posterior: the rest; medial or lateral by the side of the compartments' midline.

    Returns an array on the label grid with 11-15 at femoral cartilage voxels (0 elsewhere) and any warnings.
    """
    out = np.zeros(labels.array.shape, dtype=np.uint8)
    warnings: list[str] = []
    fc = labels.array == L.CANONICAL[L.FEMORAL_CARTILAGE]
    if not fc.any():
        return out, warnings
    points = labels.voxel_points(fc)
    a, s = -points[:, 1], points[:, 2]
    tibial = np.isin(labels.array, [L.CANONICAL[L.MEDIAL_TIBIAL_CARTILAGE], L.CANONICAL[L.LATERAL_TIBIAL_CARTILAGE]])
    a_post = float(np.percentile(a, 0.5))
    if tibial.any():
        a_notch = float(np.percentile(-labels.voxel_points(tibial)[:, 1], 95))
    else:
        lowest = a[s <= np.percentile(s, 2)].mean()
        a_notch = float(lowest + 0.25 * (a.max() - a_post))
        warnings.append(
            "No tibial cartilage: the femoral trochlea boundary was estimated from the femoral cartilage alone."
        )
    a_wb_post = a_notch - config.weight_bearing_fraction * (a_notch - a_post)
    s_cut = s.min() + config.weight_bearing_height_fraction * (s.max() - s.min())
    midline = medial_lateral_midline(labels)
    if midline is None:
        midline = float(points[:, 0].mean())
        warnings.append("Medial/lateral femoral split used the femoral cartilage centre (no tibial compartments).")
    medial = (points[:, 0] - midline) * laterality.medial_sign > 0
    if laterality.side == "unknown":
        warnings.append("Knee side unknown: femoral 'medial' subregions assume a right knee.")
    trochlea = a > a_notch
    weight_bearing = ~trochlea & (a >= a_wb_post) & (s <= s_cut)
    ids = np.where(
        trochlea,
        L.FEMORAL_SUBREGIONS["femoral_trochlea"],
        np.where(
            weight_bearing,
            np.where(
                medial,
                L.FEMORAL_SUBREGIONS["femoral_medial_weight_bearing"],
                L.FEMORAL_SUBREGIONS["femoral_lateral_weight_bearing"],
            ),
            np.where(
                medial,
                L.FEMORAL_SUBREGIONS["femoral_medial_posterior"],
                L.FEMORAL_SUBREGIONS["femoral_lateral_posterior"],
            ),
        ),
    )
    out[fc] = ids.astype(np.uint8)
    return out, warnings


def region_map(labels: Volume, femoral: np.ndarray) -> np.ndarray:
    """Cartilage region id per voxel (femoral 11-15, tibial 5/6, patellar 7; 0 elsewhere)."""
    out = np.where(
        np.isin(labels.array, [L.REGION_IDS[r] for r in ("medial_tibial", "lateral_tibial", "patellar")]),
        labels.array,
        0,
    ).astype(np.uint8)
    return np.where(femoral > 0, femoral, out)


def subregion_label_map(labels: Volume, femoral: np.ndarray) -> np.ndarray:
    """The canonical label map with femoral cartilage replaced by its subregions (subregions.nii.gz)."""
    return np.where(femoral > 0, femoral, labels.array).astype(np.uint8)
