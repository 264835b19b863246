"""Write a KneeChange: change.json, change.csv, provenance.json, meshes/<bone>_change.vtk, change.glb with its colour
bar, the analyses made for it, and one zip. Mesh files go through ``report.meshes`` like every other mesh."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..report.meshes import diverging_colours, write_colorbar_png, write_glb, write_vtk
from ..report.outputs import write_csv, write_json, zip_files

if TYPE_CHECKING:
    from ..morphometry.mesh import Surface
    from .visits import Visit


class ChangeToWrite(Protocol):
    """What the writer reads of a comparison (``KneeChange`` satisfies it): the writer depends on this, not on the
    change class, so ``KneeChange.write()`` can call it without an import cycle."""

    @property
    def baseline(self) -> Visit: ...
    @property
    def followup(self) -> Visit: ...
    @property
    def surfaces(self) -> dict[str, Surface]: ...
    @property
    def colour_range_mm(self) -> float: ...
    @property
    def provenance(self) -> dict: ...

    def to_dict(self) -> dict: ...
    def csv_row(self) -> dict[str, object]: ...


def write_change(
    change: ChangeToWrite, out_dir: Path, *, analyses: bool = True, make_zip: bool = True
) -> dict[str, Path]:
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
    files["change.csv"] = write_csv(out_dir / "change.csv", change.csv_row())
    files["provenance.json"] = write_json(out_dir / "provenance.json", change.provenance)
    if make_zip:
        files["zip"] = zip_files(out_dir, files, out_dir / "change_results.zip")
    return files
