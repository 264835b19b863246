"""Typed results of one knee analysis, and their plain-dict / CSV forms (schema in docs/results-schema.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import labels as L
from .anatomy import Laterality
from .config import AnalysisConfig
from .mesh import Surface
from .qc import StructureStats
from .volume import Volume

SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class ThicknessStats:
    """Area-weighted summary of per-vertex thickness (mm) over one region's measured bone vertices.

    Weights are the surface area each vertex stands for: decimated meshes are dense on curved rims and sparse on flat
    plateaus, so an unweighted vertex mean would depend on the mesh, not only on the anatomy (bench/RESULTS.md).
    """

    mean: float
    median: float
    std: float
    p95: float
    n_vertices: int
    area_mm2: float = 0.0

    @classmethod
    def from_values(cls, values: np.ndarray, weights: np.ndarray | None = None) -> ThicknessStats | None:
        values = np.asarray(values, float)
        weights = np.ones_like(values) if weights is None else np.asarray(weights, float)
        keep = np.isfinite(values) & (weights > 0)
        values, weights = values[keep], weights[keep]
        if values.size == 0:
            return None
        mean = float(np.average(values, weights=weights))
        std = float(np.sqrt(np.average((values - mean) ** 2, weights=weights)))
        median, p95 = weighted_quantiles(values, weights, (0.5, 0.95))
        return cls(mean, median, std, p95, int(values.size), float(weights.sum()))

    def to_dict(self) -> dict:
        return {
            "mean": round(self.mean, 4),
            "median": round(self.median, 4),
            "std": round(self.std, 4),
            "p95": round(self.p95, 4),
            "n_vertices": self.n_vertices,
            "area_mm2": round(self.area_mm2, 1),
        }


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, quantiles: tuple[float, ...]) -> tuple[float, ...]:
    """Quantiles of a weighted sample (midpoint rule on the cumulative weights; equal weights give np.median's)."""
    order = np.argsort(values)
    values, weights = values[order], weights[order]
    cumulative = (np.cumsum(weights) - weights / 2) / weights.sum()
    return tuple(float(np.interp(q, cumulative, values)) for q in quantiles)


@dataclass(frozen=True)
class RegionResult:
    """Thickness and volume of one cartilage region (None when the region is absent)."""

    bone: str
    thickness_mm: ThicknessStats | None
    volume_mm3: float | None

    def to_dict(self) -> dict:
        return {
            "bone": self.bone,
            "thickness_mm": None if self.thickness_mm is None else self.thickness_mm.to_dict(),
            "volume_mm3": None if self.volume_mm3 is None else round(self.volume_mm3, 1),
        }


@dataclass(frozen=True)
class KneeAnalysis:
    """Everything one analysis produced. Arrays and meshes stay in memory; ``write`` puts them on disk."""

    case_id: str
    inputs: dict
    laterality: Laterality
    structures: dict[str, StructureStats]
    cartilage: dict[str, RegionResult]
    warnings: tuple[str, ...]
    labels: Volume
    subregions: Volume
    surfaces: dict[str, Surface]
    config: AnalysisConfig
    provenance: dict
    image: Volume | None = None
    t2: dict = field(default_factory=dict)
    shape_model: dict = field(default_factory=dict)
    t2_map: Volume | None = None
    depth_labels: Volume | None = None
    shape_fit: object | None = None  # pipeline.shape.stage.ShapeModelResult when the shape model ran

    def thickness(self, region: str) -> float | None:
        """Mean thickness (mm) of a region, e.g. ``result.thickness("medial_tibial")``."""
        stats = self.cartilage[region].thickness_mm
        return None if stats is None else stats.mean

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "case_id": self.case_id,
            "input": self.inputs,
            "laterality": self.laterality.to_dict(),
            "structures": {name: s.to_dict() for name, s in self.structures.items()},
            "cartilage": {name: r.to_dict() for name, r in self.cartilage.items()},
            "qc": {"warnings": list(self.warnings)},
            "t2": self.t2,
            "shape_model": self.shape_model,
        }

    def csv_row(self) -> dict[str, object]:
        """One flat row with a fixed column order (empty cells for missing values)."""
        row: dict[str, object] = {"case_id": self.case_id, "laterality": self.laterality.side}
        for name in L.STRUCTURES:
            s = self.structures[name]
            row[f"{name}_present"] = int(s.present)
            row[f"{name}_volume_mm3"] = _cell(s.volume_mm3)
        for region in L.CARTILAGE_REGIONS:
            r = self.cartilage[region]
            t = r.thickness_mm
            for stat in ("mean", "median", "std", "p95"):
                row[f"{region}_thickness_{stat}_mm"] = _cell(None if t is None else getattr(t, stat))
            row[f"{region}_thickness_n_vertices"] = 0 if t is None else t.n_vertices
            row[f"{region}_volume_mm3"] = _cell(r.volume_mm3)
        t2_regions = self.t2.get("regions", {}) if self.t2.get("computed") else {}
        row["t2_method"] = self.t2.get("method", "") if t2_regions else ""
        for region in L.CARTILAGE_REGIONS:
            stats = t2_regions.get(region, {})
            for stat in ("mean", "median", "std"):
                row[f"{region}_t2_{stat}_ms"] = _cell(stats.get(stat))
            row[f"{region}_t2_n_voxels"] = stats.get("n_voxels", 0) if stats else 0
            for layer in ("deep", "superficial"):
                row[f"{region}_{layer}_t2_mean_ms"] = _cell(stats.get(layer, {}).get("mean"))
        row["bscore"] = _cell(self.shape_model.get("bscore")) if self.shape_model.get("computed") else ""
        row["nsm_assd_bone_mm"] = (
            _cell(self.shape_model.get("assd_bone_mm")) if self.shape_model.get("computed") else ""
        )
        row["n_qc_warnings"] = len(self.warnings)
        return row

    def write(self, out_dir: str | Path, *, make_zip: bool = True) -> dict[str, Path]:
        """Write every output file into ``out_dir`` (see docs/results-schema.md); returns name -> path."""
        from .outputs import write_outputs

        return write_outputs(self, Path(out_dir), make_zip=make_zip)

    def show(self, **kwargs):
        """Interactive 3-D view of the bones coloured by thickness (pyvista; trame backend in Jupyter)."""
        from .viewer import show_analysis

        return show_analysis(self, **kwargs)


def _cell(value: float | None) -> object:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return round(float(value), 4)
