"""Writers for meshes: legacy VTK for Slicer/ParaView, one binary glTF (GLB) with vertex colours for browsers."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np

from .. import labels as L
from ..morphometry.mesh import Surface
from .colour_scales import T2_DISPLAY_MS

NO_CARTILAGE_RGB = (225, 215, 195)  # bone colour where no cartilage was measured
NSM_SUFFIX, NSM_RGB = "_nsm_reconstruction", (150, 110, 220)
#: glTF is y-up: map LPS (x=L, y=P, z=S) to (x=L, y=S, z=A), a proper rotation, so the knee stands upright.
LPS_TO_GLTF = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def scalar_colours(
    values: np.ndarray, measured: np.ndarray, vmax: float, *, cmap: str = "viridis", vmin: float = 0.0
) -> np.ndarray:
    """RGBA uint8 per vertex: ``cmap`` over [vmin, vmax] where measured, bone colour elsewhere (thickness or T2)."""
    from matplotlib import colormaps

    scaled = np.clip((np.asarray(values, float) - vmin) / (vmax - vmin), 0.0, 1.0)
    rgba = (colormaps[cmap](scaled) * 255).astype(np.uint8)
    rgba[~np.asarray(measured, bool), :3] = NO_CARTILAGE_RGB
    rgba[:, 3] = 255
    return rgba


def diverging_colours(values: np.ndarray, measured: np.ndarray, vmax: float, *, cmap: str = "RdBu_r") -> np.ndarray:
    """RGBA uint8 per vertex on a diverging map centred on zero over [-vmax, vmax] (blue < 0 < red, white at 0),
    bone colour where not measured (a change map)."""
    shifted = np.nan_to_num(np.asarray(values, float)) + vmax
    return scalar_colours(shifted, np.asarray(measured, bool) & np.isfinite(values), 2 * vmax, cmap=cmap)


def write_vtk(surface: Surface, path: Path) -> Path:
    """Legacy VTK (binary) with every point array; geometry in LPS mm.

    Written with VTK's own legacy writer (the file pyvista's ``save`` writes), importing only the VTK modules it
    needs: pyvista's import is most of a second of a one-case process. A failed write raises ``OSError`` (ENOSPC
    when VTK says the disk is full), as pyvista would."""
    from vtkmodules.vtkCommonMisc import vtkErrorCode
    from vtkmodules.vtkIOLegacy import vtkPolyDataWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = vtkPolyDataWriter()
    writer.SetInputData(surface.to_vtk())
    writer.SetFileName(str(path))
    writer.SetFileTypeToBinary()
    writer.Write()
    if writer.GetErrorCode() == vtkErrorCode.OutOfDiskSpaceError:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    if writer.GetErrorCode() or not path.is_file():
        raise OSError(f"VTK writer failed to write file: {path}")
    return path


def write_glb(layers: list[tuple[Surface, np.ndarray]], path: Path) -> Path:
    """One GLB scene, a named node per surface, with per-vertex RGBA colours (COLOR_0), in mm.

    Args:
        layers: (surface, rgba) pairs; rgba is (N, 4) uint8 per vertex.
        path: output file ending in .glb.
    """
    import trimesh

    scene = trimesh.Scene()
    for surface, rgba in layers:
        mesh = trimesh.Trimesh(
            vertices=surface.points @ LPS_TO_GLTF.T, faces=surface.faces, vertex_colors=rgba, process=False
        )
        scene.add_geometry(mesh, node_name=surface.name, geom_name=surface.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    scene.export(str(path), file_type="glb")
    return path


def structure_rgba(name: str, n: int, alpha: int = 255) -> np.ndarray:
    rgba = np.empty((n, 4), dtype=np.uint8)
    rgba[:, :3] = L.COLOURS[name]
    rgba[:, 3] = alpha
    return rgba


def knee_glb_layers(
    surfaces: dict[str, Surface],
    *,
    vmax_mm: float,
    include: tuple[str, ...] | None = None,
    colour_by: str = "thickness",
) -> list[tuple[Surface, np.ndarray]]:
    """Bones coloured by cartilage thickness (or mean T2 over ``T2_DISPLAY_MS`` with ``colour_by="t2"``), the rest in
    registry colours."""
    t2_min_ms, t2_max_ms = T2_DISPLAY_MS
    layers = []
    for name, surface in surfaces.items():
        if include is not None and name not in include:
            continue
        if name in L.BONES and colour_by == "t2" and "t2_ms" in surface.point_data:
            t2 = surface.point_data["t2_ms"]
            rgba = scalar_colours(np.nan_to_num(t2), np.isfinite(t2), t2_max_ms, cmap="magma", vmin=t2_min_ms)
        elif name in L.BONES and "thickness_mm" in surface.point_data:
            rgba = scalar_colours(surface.point_data["thickness_mm"], surface.point_data["region"] > 0, vmax_mm)
        elif name in L.COLOURS:
            rgba = structure_rgba(name, surface.n_points)
        elif name.endswith(NSM_SUFFIX):  # shape-model reconstruction: translucent, distinct from anatomy
            rgba = np.tile(np.array([*NSM_RGB, 140], dtype=np.uint8), (surface.n_points, 1))
        else:
            rgba = structure_rgba(L.FEMUR, surface.n_points)
        layers.append((surface, rgba))
    return layers


def write_colorbar_png(
    path: Path,
    *,
    vmax_mm: float,
    label: str = "Cartilage thickness (mm)",
    cmap: str = "viridis",
    vmin_mm: float = 0.0,
) -> Path:
    """A horizontal colour bar matching scalar_colours (or diverging_colours, with vmin_mm=-vmax_mm), its title and
    tick labels inside the picture (the figure is cropped to what it draws, never cutting the title off)."""
    from matplotlib import cm, colors
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0, 0.45), dpi=150)
    ax = fig.add_axes((0.05, 0.2, 0.9, 0.6))
    bar = fig.colorbar(cm.ScalarMappable(colors.Normalize(vmin_mm, vmax_mm), cmap), cax=ax, orientation="horizontal")
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", pad_inches=0.05)
    return path
