"""The flat, one-row form of a result (results.csv; one row per case in cohort tables)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .. import labels as L

if TYPE_CHECKING:
    from .results import KneeAnalysis


def csv_row(result: KneeAnalysis) -> dict[str, object]:
    """One flat row with a fixed column order (empty cells for missing values)."""
    row: dict[str, object] = {"case_id": result.case_id, "laterality": result.laterality.side}
    for name in L.STRUCTURES:
        s = result.structures[name]
        row[f"{name}_present"] = int(s.present)
        row[f"{name}_volume_mm3"] = _cell(s.volume_mm3)
    for region in L.CARTILAGE_REGIONS:
        r = result.cartilage[region]
        t = r.thickness_mm
        for stat in ("mean", "median", "std", "p95"):
            row[f"{region}_thickness_{stat}_mm"] = _cell(None if t is None else getattr(t, stat))
        row[f"{region}_thickness_n_vertices"] = 0 if t is None else t.n_vertices
        row[f"{region}_volume_mm3"] = _cell(r.volume_mm3)
    t2 = result.t2.to_dict()
    t2_regions = t2.get("regions", {}) if t2.get("computed") else {}
    row["t2_method"] = t2.get("method", "") if t2_regions else ""
    for region in L.CARTILAGE_REGIONS:
        stats = t2_regions.get(region, {})
        for stat in ("mean", "median", "std"):
            row[f"{region}_t2_{stat}_ms"] = _cell(stats.get(stat))
        row[f"{region}_t2_n_voxels"] = stats.get("n_voxels", 0) if stats else 0
        for layer in ("deep", "superficial"):
            row[f"{region}_{layer}_t2_mean_ms"] = _cell(stats.get(layer, {}).get("mean"))
    shape = result.shape_fit
    row["bscore"] = _cell(shape.bscore) if shape is not None else ""
    row["nsm_assd_bone_mm"] = _cell(shape.assd_bone_mm) if shape is not None else ""
    row["n_qc_warnings"] = len(result.warnings)
    return row


def _cell(value: float | None) -> object:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return round(float(value), 4)
