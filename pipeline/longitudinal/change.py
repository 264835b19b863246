"""Typed results of a two-visit comparison: per-region thickness change, areas that thinned or thickened, ordered
values, volume change, the registrations, and ``KneeChange`` that holds them (schema in docs/results-schema.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import labels as L
from ..morphometry.mesh import Surface
from ..morphometry.summary import ThicknessStats, weighted_quantiles
from .registration import BoneRegistration
from .transfer import TransferredThickness
from .visits import Visit

CHANGE_SCHEMA_VERSION = "1.0"
#: Subregions whose changes are ranked as "ordered values" (Buck et al. 2009): the femorotibial ones.
ORDERED_REGIONS = (*L.FEMORAL_SUBREGIONS, "medial_tibial", "lateral_tibial")


@dataclass(frozen=True)
class ChangeStats:
    """Area-weighted summary of per-vertex thickness change (mm, follow-up minus baseline) over one region."""

    mean: float
    median: float
    std: float
    p05: float
    p95: float
    n_vertices: int

    @classmethod
    def from_values(cls, values: np.ndarray, weights: np.ndarray) -> ChangeStats | None:
        """The thickness statistics (same weighting), with the 5th percentile added."""
        stats = ThicknessStats.from_values(values, weights)
        if stats is None:
            return None
        keep = np.isfinite(values) & (weights > 0)
        (p05,) = weighted_quantiles(values[keep], weights[keep], (0.05,))
        return cls(stats.mean, stats.median, stats.std, p05, stats.p95, stats.n_vertices)

    def to_dict(self) -> dict:
        stats = {key: round(getattr(self, key), 4) for key in ("mean", "median", "std", "p05", "p95")}
        return {**stats, "n_vertices": self.n_vertices}


@dataclass(frozen=True)
class RegionChange:
    """Thickness change of one cartilage region on the baseline's vertices (None values: region not compared)."""

    bone: str
    thickness_change_mm: ChangeStats | None
    baseline_mean_mm: float | None = None
    followup_mean_mm: float | None = None
    percent_change: float | None = None
    area_mm2: float = 0.0
    thinned_area_mm2: float = 0.0
    thickened_area_mm2: float = 0.0
    denuded_area_mm2: float = 0.0

    @classmethod
    def measure(cls, bone: str, ids: tuple[int, ...], t: TransferredThickness, threshold_mm: float) -> RegionChange:
        member = np.isin(t.region, ids)
        change = t.change_mm[member]
        weights = t.areas_mm2[member]
        stats = ChangeStats.from_values(change, weights)
        if stats is None:
            return cls(bone, None)
        both = np.isfinite(change)
        area = weights[both]
        baseline = float(np.average(t.baseline_mm[member][both], weights=area))
        followup = float(np.average(t.followup_mm[member][both], weights=area))
        return cls(
            bone,
            stats,
            baseline_mean_mm=baseline,
            followup_mean_mm=followup,
            percent_change=100.0 * (followup - baseline) / baseline if baseline > 0 else None,
            area_mm2=float(area.sum()),
            thinned_area_mm2=float(area[change[both] < -threshold_mm].sum()),
            thickened_area_mm2=float(area[change[both] > threshold_mm].sum()),
            denuded_area_mm2=float(weights[t.denuded[member]].sum()),
        )

    def to_dict(self) -> dict:
        def pct(part: float) -> float | None:
            return round(100.0 * part / self.area_mm2, 2) if self.area_mm2 > 0 else None

        return {
            "bone": self.bone,
            "thickness_change_mm": None if self.thickness_change_mm is None else self.thickness_change_mm.to_dict(),
            "percent_change": _round(self.percent_change, 3),
            "baseline_mean_mm": _round(self.baseline_mean_mm, 4),
            "followup_mean_mm": _round(self.followup_mean_mm, 4),
            "area_mm2": round(self.area_mm2, 1),
            "thinned_area_mm2": round(self.thinned_area_mm2, 1),
            "thinned_percent": pct(self.thinned_area_mm2),
            "thickened_area_mm2": round(self.thickened_area_mm2, 1),
            "thickened_percent": pct(self.thickened_area_mm2),
            "denuded_area_mm2": round(self.denuded_area_mm2, 1),
        }


@dataclass(frozen=True)
class VolumeChange:
    """Cartilage volume of both visits (voxel counts of each analysis) and its change."""

    baseline_mm3: float | None
    followup_mm3: float | None

    @property
    def change_mm3(self) -> float | None:
        if self.baseline_mm3 is None or self.followup_mm3 is None:
            return None
        return self.followup_mm3 - self.baseline_mm3

    @property
    def percent_change(self) -> float | None:
        change = self.change_mm3
        return None if change is None or not self.baseline_mm3 else 100.0 * change / self.baseline_mm3

    def to_dict(self) -> dict:
        return {
            "baseline_mm3": _round(self.baseline_mm3, 1),
            "followup_mm3": _round(self.followup_mm3, 1),
            "change_mm3": _round(self.change_mm3, 1),
            "percent_change": _round(self.percent_change, 3),
        }


@dataclass(frozen=True)
class KneeChange:
    """Everything a two-visit comparison produced. ``write(OUT)`` puts it on disk (change.json, change.csv, meshes).

    Attributes:
        baseline, followup: the two visits (with their analyses when made here).
        registrations: bone -> rigid fit of the follow-up bone onto the baseline bone.
        regions: reported region -> thickness change on the baseline's vertices (baseline regions).
        volumes: cartilage structure -> volume change.
        surfaces: bone -> baseline surface with ``thickness_change_mm``, ``baseline_mm``, ``followup_mm``, ``region``.
        threshold_mm: the change beyond which an area counts as thinned or thickened.
        colour_range_mm: the symmetric range of the change map's colours.
    """

    baseline: Visit
    followup: Visit
    registrations: dict[str, BoneRegistration]
    regions: dict[str, RegionChange]
    volumes: dict[str, VolumeChange]
    surfaces: dict[str, Surface]
    threshold_mm: float
    colour_range_mm: float
    warnings: tuple[str, ...] = ()
    provenance: dict = field(default_factory=dict)

    def change(self, region: str) -> float | None:
        """Mean thickness change (mm) of a region, e.g. ``change.change("medial_tibial")``."""
        stats = self.regions[region].thickness_change_mm
        return None if stats is None else stats.mean

    def ordered_values(self) -> list[tuple[str, float]]:
        """Femorotibial subregion mean changes sorted from the largest loss to the largest gain."""
        values = [(r, stats.mean) for r in ORDERED_REGIONS if (stats := self.regions[r].thickness_change_mm)]
        return sorted(values, key=lambda item: item[1])

    def to_dict(self) -> dict:
        ordered = self.ordered_values()
        return {
            "schema_version": CHANGE_SCHEMA_VERSION,
            "baseline": self.baseline.to_dict(),
            "followup": self.followup.to_dict(),
            "laterality": self.baseline.laterality.side,
            "registration": {bone: reg.to_dict() for bone, reg in self.registrations.items()},
            "threshold_mm": self.threshold_mm,
            "regions": {name: region.to_dict() for name, region in self.regions.items()},
            "ordered_values": [
                {"rank": i + 1, "region": region, "mean_change_mm": round(value, 4)}
                for i, (region, value) in enumerate(ordered)
            ],
            "thinning_score_mm": round(sum(v for _, v in ordered if v < 0), 4),
            "thickening_score_mm": round(sum(v for _, v in ordered if v > 0), 4),
            "volumes": {name: volume.to_dict() for name, volume in self.volumes.items()},
            "colour_range_mm": self.colour_range_mm,
            "qc": {"warnings": list(self.warnings)},
        }

    def csv_row(self) -> dict[str, object]:
        """One flat row (fixed column order, empty cells for missing values) for cohort tables."""
        return change_csv_row(self)

    def write(self, out_dir: str | Path, *, analyses: bool = True, make_zip: bool = True) -> dict[str, Path]:
        """Write change.json, change.csv, provenance, meshes/<bone>_change.vtk, change.glb and its colour bar into
        ``out_dir``; with ``analyses``, also the analyses made here (``baseline/``, ``followup/``). DiskFullError when
        the disk fills up while writing (the analyses check their own room first)."""
        from ..diskspace import disk_full_named
        from .outputs import write_change

        with disk_full_named(out_dir, "the comparison's results"):
            return write_change(self, Path(out_dir), analyses=analyses, make_zip=make_zip)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


CHANGE_STATS = ("mean", "median", "std", "p05", "p95")
REGION_COLUMNS = (
    "percent_change",
    "baseline_mean_mm",
    "followup_mean_mm",
    "thinned_area_mm2",
    "thickened_area_mm2",
    "denuded_area_mm2",
)


def change_csv_row(change: KneeChange) -> dict[str, object]:
    """One flat row with a fixed column order (empty cells for missing values)."""
    row: dict[str, object] = {
        "baseline_case_id": change.baseline.case_id,
        "followup_case_id": change.followup.case_id,
        "laterality": change.baseline.laterality.side,
    }
    for bone in L.BONES:
        reg = change.registrations.get(bone)
        row[f"{bone}_rotation_deg"] = _cell(None if reg is None else reg.transform.angle_deg)
        row[f"{bone}_centre_shift_mm"] = _cell(None if reg is None else math.hypot(*reg.centre_shift_mm))
        row[f"{bone}_residual_rms_mm"] = _cell(None if reg is None else reg.residual_rms_mm)
        row[f"{bone}_overlap_fraction"] = _cell(None if reg is None else reg.overlap_fraction)
        row[f"{bone}_inverse_consistency_mm"] = _cell(None if reg is None else reg.inverse_consistency_mm)
    for region, result in change.regions.items():
        stats = result.thickness_change_mm
        for stat in CHANGE_STATS:
            row[f"{region}_change_{stat}_mm"] = _cell(None if stats is None else getattr(stats, stat))
        row[f"{region}_change_n_vertices"] = 0 if stats is None else stats.n_vertices
        for column in REGION_COLUMNS:
            row[f"{region}_{column}"] = _cell(getattr(result, column))
    ordered = change.ordered_values()
    for rank in range(1, len(ORDERED_REGIONS) + 1):  # a fixed number of columns, empty past the regions compared
        region, value = ordered[rank - 1] if rank <= len(ordered) else ("", None)
        row[f"ordered_value_{rank}_mm"], row[f"ordered_value_{rank}_region"] = _cell(value), region
    for name, volume in change.volumes.items():
        row[f"{name}_volume_change_mm3"] = _cell(volume.change_mm3)
        row[f"{name}_volume_percent_change"] = _cell(volume.percent_change)
    row["n_qc_warnings"] = len(change.warnings)
    return row


def _cell(value: float | None) -> object:
    """A CSV cell: the value rounded to 4 decimals, empty when missing or not finite."""
    return "" if value is None or not math.isfinite(value) else round(float(value), 4)
