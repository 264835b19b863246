"""Typed summaries of per-vertex thickness: area-weighted statistics per region, and each region's volume."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
