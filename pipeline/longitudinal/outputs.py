"""Write a KneeChange: change.json, change.csv, provenance.json, meshes/<bone>_change.vtk, change.glb with its colour
bar, the analyses made for it, and one zip. Mesh files go through ``report.meshes`` like every other mesh."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from .. import labels as L
from ..report.meshes import diverging_colours, write_colorbar_png, write_glb, write_vtk
from ..report.outputs import write_csv, write_json, zip_files
from .change import ORDERED_REGIONS

if TYPE_CHECKING:
    from .change import KneeChange

CHANGE_STATS = ("mean", "median", "std", "p05", "p95")
REGION_COLUMNS = (
    "percent_change",
    "baseline_mean_mm",
    "followup_mean_mm",
    "thinned_area_mm2",
    "thickened_area_mm2",
    "denuded_area_mm2",
)


def write_change(change: KneeChange, out_dir: Path, *, analyses: bool = True, make_zip: bool = True) -> dict[str, Path]:
    """Every file of ``change`` under ``out_dir``; returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for bone, surface in change.surfaces.items():
        files[f"meshes/{bone}_change.vtk"] = write_vtk(surface, out_dir / "meshes" / f"{bone}_change.vtk")
    layers = [
        (surface, diverging_colours(surface.point_data["thickness_change_mm"], surface.point_data["region"] > 0, vmax))
        for surface, vmax in ((s, change.colour_range_mm) for s in change.surfaces.values())
    ]
    if layers:
        files["change.glb"] = write_glb(layers, out_dir / "change.glb")
    files["change_colorbar.png"] = write_colorbar_png(
        out_dir / "change_colorbar.png",
        vmin_mm=-change.colour_range_mm,
        vmax_mm=change.colour_range_mm,
        cmap="RdBu_r",
        label="Thickness change (mm), blue = thinner",
    )
    if analyses:
        for role, visit in (("baseline", change.baseline), ("followup", change.followup)):
            if visit.analysed_here and visit.analysis is not None:
                written = visit.analysis.write(out_dir / role, make_zip=False)
                files.update({f"{role}/{name}": path for name, path in written.items()})
    data = change.to_dict()
    data["files"] = sorted([*files, "change.json", "change.csv", "provenance.json"])
    files["change.json"] = write_json(out_dir / "change.json", data)
    files["change.csv"] = write_csv(out_dir / "change.csv", change_csv_row(change))
    files["provenance.json"] = write_json(out_dir / "provenance.json", change.provenance)
    if make_zip:
        files["zip"] = zip_files(out_dir, files, out_dir / "change_results.zip")
    return files


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
