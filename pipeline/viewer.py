"""Interactive 3-D view of an analysis with pyvista: bones coloured by cartilage thickness, with a scalar bar.

In Jupyter, pyvista renders through its trame backend (``jupyter_backend="trame"``); in a script it opens a
window, or writes a screenshot when ``screenshot=`` is given (off-screen, EGL on headless hosts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import labels as L


def build_plotter(result, *, off_screen: bool = False, show_cartilage: bool = True, show_menisci: bool = True):
    import pyvista as pv

    plotter = pv.Plotter(off_screen=off_screen)
    vmax = result.config.thickness_colour_max_mm
    for name, surface in result.surfaces.items():
        mesh = surface.to_pyvista()
        if name in L.BONES and "thickness_mm" in surface.point_data:
            # NaN where no cartilage was measured, drawn in bone colour rather than as 0 mm
            measured = surface.point_data["region"] > 0
            mesh.point_data["thickness_mm"] = np.where(measured, surface.point_data["thickness_mm"], np.nan)
            plotter.add_mesh(
                mesh,
                scalars="thickness_mm",
                cmap="viridis",
                clim=(0, vmax),
                nan_color="#e1d7c3",
                scalar_bar_args={"title": "Cartilage thickness (mm)"},
                smooth_shading=True,
            )
        elif (name in L.CARTILAGES and show_cartilage) or (name in L.MENISCI and show_menisci):
            plotter.add_mesh(mesh, color=[c / 255 for c in L.COLOURS[name]], opacity=0.35, smooth_shading=True)
    plotter.view_vector((0, -1, 0), viewup=(0, 0, 1))  # from the front (anterior), superior up
    return plotter


def show_analysis(result, *, screenshot: str | Path | None = None, jupyter_backend: str | None = None, **kwargs):
    """Show (or save a screenshot of) the thickness map of ``result``."""
    plotter = build_plotter(result, off_screen=screenshot is not None, **kwargs)
    if screenshot is not None:
        plotter.screenshot(str(screenshot))
        plotter.close()
        return Path(screenshot)
    return plotter.show(jupyter_backend=jupyter_backend)
