"""The morphometry stage: a canonical label map -> structures and QC, knee side, regions, surfaces, thickness.

One pure function, :func:`measure_knee`, returning a frozen :class:`Morphometry`; the engine calls it between
loading/segmenting and the T2 and shape-model stages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import labels as L
from ..config import AnalysisConfig
from ..errors import EmptySegmentationError
from ..progress import ProgressFn, StageTimer
from ..volume import Volume
from . import anatomy, qc
from .anatomy import Laterality
from .mesh import Surface
from .qc import StructureStats
from .regions import build_surfaces, region_warnings, summarise_regions
from .summary import RegionResult
from .thickness import ThicknessMap, measure_thickness


@dataclass(frozen=True)
class Morphometry:
    """What the morphometry stage measured on one knee.

    Attributes:
        structures: presence, volume and pieces of each of the nine structures.
        laterality: knee side and how it was decided.
        regions: cartilage region id per voxel (femoral 11-15, tibial 5/6, patellar 7), numpy order of ``labels``.
        subregions: the label map with femoral cartilage replaced by its subregions.
        surfaces: structure name -> surface in LPS mm; bones carry ``thickness_mm`` and ``region`` point arrays.
        thickness_maps: bone -> per-vertex thickness.
        cartilage: reported region -> thickness statistics and volume.
        warnings: QC warnings, in the order found.
        timings_s: seconds per sub-stage.
    """

    structures: dict[str, StructureStats]
    laterality: Laterality
    regions: np.ndarray
    subregions: Volume
    surfaces: dict[str, Surface]
    thickness_maps: dict[str, ThicknessMap]
    cartilage: dict[str, RegionResult]
    warnings: tuple[str, ...]
    timings_s: dict[str, float]


def measure_knee(
    labels: Volume,
    config: AnalysisConfig,
    *,
    ignored_values: dict[int, int] | None = None,
    progress: ProgressFn | None = None,
) -> Morphometry:
    """Measure a knee from its canonical label map.

    Args:
        labels: canonical label map (uint8) with its patient geometry.
        config: smoothing, vertex budgets, ray lengths and region fractions.
        ignored_values: label values the scheme did not name (value -> voxel count), reported as a QC warning.
        progress: callback(fraction 0-1, message).
    Raises:
        EmptySegmentationError: no knee structure in the label map.
    """
    timer = StageTimer(progress)
    with timer.stage("structures", 0.0, "Checking structures"):
        stats = qc.structure_stats(labels)
        if not any(s.present for s in stats.values()):
            unnamed = sorted(ignored_values or {})
            raise EmptySegmentationError(
                "No knee structures found in the label map (all voxels are background or unnamed labels"
                + (f": values {unnamed}" if unnamed else "")
                + "). Check the label scheme."
            )
        warnings = qc.qc_warnings(stats, ignored_values or {})
        laterality = anatomy.detect_laterality(labels)
        if laterality.side == "unknown":
            warnings.append("Knee side could not be determined (" + laterality.method + ").")
    with timer.stage("regions", 0.1, "Femoral subregions"):
        femoral, more = anatomy.femoral_subregions(labels, laterality, config)
        warnings.extend(more)
        regions = anatomy.region_map(labels, femoral)
        subregions = labels.with_array(anatomy.subregion_label_map(labels, femoral), content="subregions")
    with timer.stage("meshes", 0.2, "Building surfaces"):
        surfaces = build_surfaces(labels, config)
    with timer.stage("thickness", 0.7, "Measuring cartilage thickness"):
        thickness_maps: dict[str, ThicknessMap] = {}
        for bone, cartilages in L.BONE_CARTILAGE.items():
            if bone not in surfaces:
                continue
            values = tuple(L.CANONICAL[c] for c in cartilages)
            tmap = measure_thickness(surfaces[bone], labels, values, regions, config)
            thickness_maps[bone] = tmap
            surfaces[bone] = surfaces[bone].with_point_data(thickness_mm=tmap.thickness_mm, region=tmap.region)
        areas = {bone: surfaces[bone].vertex_areas() for bone in thickness_maps}
        cartilage = summarise_regions(thickness_maps, areas, regions, labels)
        warnings.extend(region_warnings(cartilage, stats))
    timer.report(1.0, "Morphometry complete")
    return Morphometry(
        stats, laterality, regions, subregions, surfaces, thickness_maps, cartilage, tuple(warnings), timer.timings
    )
