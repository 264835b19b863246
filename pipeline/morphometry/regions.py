"""Surfaces of every structure, and per-region thickness and volume summaries."""

from __future__ import annotations

import numpy as np

from .. import labels as L
from ..config import AnalysisConfig
from ..volume import Volume
from .mesh import Surface, surface_from_mask
from .qc import StructureStats
from .summary import RegionResult, ThicknessStats
from .thickness import ThicknessMap


def build_surfaces(labels: Volume, config: AnalysisConfig) -> dict[str, Surface]:
    """Every present structure's surface, bones with the bone recipe, cartilage and menisci with the soft one."""
    surfaces: dict[str, Surface] = {}
    for name in L.STRUCTURES:
        mask = labels.array == L.CANONICAL[name]
        if not mask.any():
            continue
        if name in L.BONES:
            var, budget = config.bone_smoothing_var_mm2, config.bone_vertices.get(name, 20_000)
        elif name in L.MENISCI:
            var, budget = config.cartilage_smoothing_var_mm2, config.meniscus_vertices
        else:
            var, budget = config.cartilage_smoothing_var_mm2, config.cartilage_vertices
        surface = surface_from_mask(labels, mask, name=name, smoothing_var_mm2=var, target_vertices=budget)
        if surface is not None and len(surface.faces):
            surfaces[name] = surface
    return surfaces


def summarise_regions(
    thickness_maps: dict[str, ThicknessMap], areas: dict[str, np.ndarray], regions: np.ndarray, labels: Volume
) -> dict[str, RegionResult]:
    """Per reported region: area-weighted thickness statistics over its vertices, and its cartilage volume."""
    # Counted id by id: a bincount of the whole grid would first widen every voxel to 64 bits.
    voxel_counts = {i: int(np.count_nonzero(regions == i)) for ids in L.CARTILAGE_REGIONS.values() for i in ids}
    out = {}
    for region, ids in L.CARTILAGE_REGIONS.items():
        bone = L.REGION_BONE[region]
        n_voxels = sum(voxel_counts[i] for i in ids)
        volume = n_voxels * labels.voxel_volume_mm3 if n_voxels else None
        tmap = thickness_maps.get(bone)
        stats = None
        if tmap is not None:
            member = np.isin(tmap.region, ids)
            stats = ThicknessStats.from_values(tmap.thickness_mm[member], areas[bone][member])
        out[region] = RegionResult(bone=bone, thickness_mm=stats, volume_mm3=volume)
    return out


def region_warnings(cartilage: dict[str, RegionResult], stats: dict[str, StructureStats]) -> list[str]:
    warnings = []
    for region, result in cartilage.items():
        if result.volume_mm3 and result.thickness_mm is None:
            if stats[L.REGION_BONE[region]].present:
                warnings.append(f"Cartilage region {region} has voxels but no bone vertex measured through it.")
            else:
                warnings.append(f"Cartilage region {region} cannot be measured: its bone is missing.")
    return warnings
