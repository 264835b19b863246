"""Regional T2 statistics (ms): per cartilage region, and per deep/superficial layer."""

from __future__ import annotations

import numpy as np

from .. import labels as L
from ..errors import GeometryMismatchError
from ..volume import Volume
from .depth import DEEP_OFFSET, SUPERFICIAL_OFFSET
from .qdess import T2Params


def _summary(values: np.ndarray, n_total: int) -> dict:
    """mean/median/std (ddof 0, as the predecessor's nanstd) of valid values, with counts; None when empty."""
    if values.size == 0:
        return {"mean": None, "median": None, "std": None, "n_voxels": 0, "n_excluded": int(n_total)}
    v = values.astype(np.float64)
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "std": float(v.std()),
        "n_voxels": int(v.size),
        "n_excluded": int(n_total - v.size),
    }


def _region_ids(name: str) -> tuple[int, ...]:
    ids = L.CARTILAGE_REGIONS[name]
    # Without femoral subregions the region map keeps femoral cartilage as label 4: pool it as "femoral".
    return (*ids, L.CANONICAL[L.FEMORAL_CARTILAGE]) if name == "femoral" else ids


def t2_statistics(
    t2map: Volume | np.ndarray,
    region_map: np.ndarray,
    depth_labels: np.ndarray | None = None,
    params: T2Params = T2Params(),
) -> dict:
    """Regional T2 statistics (ms) keyed by the names of ``labels.CARTILAGE_REGIONS``.

    Args:
        t2map: T2 in ms, shape (nk, nj, ni).
        region_map: region id per voxel (femoral 11-15, tibial 5/6, patellar 7; 0 elsewhere), same shape.
        depth_labels: region id + 100 (deep) / + 200 (superficial) per voxel, same shape; None skips depth.
        params: ``stats_range_ms`` decides which values count; the rest are excluded (reported as n_excluded).

    Returns:
        {region: {mean, median, std, n_voxels, n_excluded, deep: {...}, superficial: {...}}}; every region is
        present, with None statistics and n_voxels 0 where it has no valid voxel.
    """
    values = np.asarray(t2map.array if isinstance(t2map, Volume) else t2map)
    region_map = np.asarray(region_map)
    if values.shape != region_map.shape or (depth_labels is not None and np.shape(depth_labels) != values.shape):
        raise GeometryMismatchError(
            f"T2 statistics: the T2 map {values.shape}, region map {region_map.shape} and depth labels "
            f"{None if depth_labels is None else np.shape(depth_labels)} must have one shape."
        )
    # Work on cartilage voxels only: a few percent of the volume.
    index = np.flatnonzero(region_map)
    t2 = values.ravel()[index]
    regions = region_map.ravel()[index]
    depth = np.asarray(depth_labels).ravel()[index] if depth_labels is not None else None
    lo, hi = params.stats_range_ms
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(t2) & (t2 > lo) & (t2 <= hi)
    out = {}
    for name in L.CARTILAGE_REGIONS:
        ids = np.array(_region_ids(name))
        member = np.isin(regions, ids)
        entry = _summary(t2[member & ok], int(member.sum()))
        for layer, offset in (("deep", DEEP_OFFSET), ("superficial", SUPERFICIAL_OFFSET)):
            if depth is None:
                entry[layer] = _summary(t2[:0], 0)
                continue
            in_layer = np.isin(depth, ids + offset)
            entry[layer] = _summary(t2[in_layer & ok], int(in_layer.sum()))
        out[name] = entry
    return out


def rounded(obj, decimals: int = 3):
    if isinstance(obj, dict):
        return {k: rounded(v, decimals) for k, v in obj.items()}
    if isinstance(obj, float):
        return round(obj, decimals)
    return obj
