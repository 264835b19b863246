"""Interactive 3-D view of an analysis with pyvista: bones coloured by cartilage thickness, with a scalar bar.

In Jupyter, pyvista renders through its trame backend (``jupyter_backend="trame"``); in a script it opens a
window, or writes a screenshot when ``screenshot=`` is given (off-screen, EGL on headless hosts). The web app's
trame viewer (app/trame_viewer.py) builds its scene with the same ``add_knee``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import labels as L

GROUPS = {"cartilage": L.CARTILAGES, "menisci": L.MENISCI}
#: A vertical bar at the right edge, its title above it (a horizontal bar's title sat on its middle tick label).
SCALAR_BAR = {
    "title": "Cartilage thickness (mm)\n",
    "vertical": True,
    "position_x": 0.84,
    "position_y": 0.2,
    "width": 0.06,
    "height": 0.6,
    "fmt": "%.1f",
    "n_labels": 5,
    "title_font_size": 16,
    "label_font_size": 14,
}


def add_knee(plotter, meshes: dict, *, vmax_mm: float = 4.0, show: tuple[str, ...] = ("cartilage", "menisci")):
    """Add bones (thickness colours, scalar bar) and translucent cartilage/menisci; returns actors by group.

    Args:
        plotter: a pyvista Plotter.
        meshes: structure name -> pyvista PolyData; bones carry ``thickness_mm`` and ``region`` point arrays.
        vmax_mm: top of the thickness colour scale.
        show: groups visible at first ("cartilage", "menisci"); hidden groups are still added, for toggling.
    """
    actors: dict[str, list] = {group: [] for group in GROUPS}
    for name in L.BONES:
        mesh = meshes.get(name)
        if mesh is None or "thickness_mm" not in mesh.point_data:
            continue
        mesh = mesh.copy()
        # NaN where no cartilage was measured, drawn in bone colour rather than as 0 mm
        measured = mesh.point_data["region"] > 0
        mesh.point_data["thickness (mm)"] = np.where(measured, mesh.point_data["thickness_mm"], np.nan)
        plotter.add_mesh(
            mesh,
            scalars="thickness (mm)",
            cmap="viridis",
            clim=(0, vmax_mm),
            nan_color="#e1d7c3",
            scalar_bar_args=SCALAR_BAR,
            smooth_shading=True,
        )
    for group, names in GROUPS.items():
        for name in names:
            if name in meshes:
                actor = plotter.add_mesh(
                    meshes[name], color=[c / 255 for c in L.COLOURS[name]], opacity=0.35, smooth_shading=True
                )
                actor.SetVisibility(group in show)
                actors[group].append(actor)
    plotter.view_vector((0, -1, 0), viewup=(0, 0, 1))  # from the front (anterior), superior up
    plotter.add_axes(xlabel="L", ylabel="P", zlabel="S")  # patient directions (LPS), turning with the knee
    return actors


def build_plotter(result, *, off_screen: bool = False, show_cartilage: bool = True, show_menisci: bool = True):
    import pyvista as pv

    plotter = pv.Plotter(off_screen=off_screen)
    show = tuple(g for g, on in (("cartilage", show_cartilage), ("menisci", show_menisci)) if on)
    meshes = {name: surface.to_pyvista() for name, surface in result.surfaces.items()}
    add_knee(plotter, meshes, vmax_mm=result.config.thickness_colour_max_mm, show=show)
    return plotter


def show_analysis(result, *, screenshot: str | Path | None = None, jupyter_backend: str | None = None, **kwargs):
    """Show (or save a screenshot of) the thickness map of ``result``."""
    plotter = build_plotter(result, off_screen=screenshot is not None, **kwargs)
    if screenshot is not None:
        plotter.screenshot(str(screenshot))
        plotter.close()
        return Path(screenshot)
    return plotter.show(jupyter_backend=jupyter_backend)
