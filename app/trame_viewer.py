"""Interactive 3-D viewer of one result folder, served by trame (server-side VTK rendering, works headless).

    python -m app.trame_viewer OUT/ --port 8090

Bones coloured by cartilage thickness with a scalar bar, cartilage and menisci toggled on/off. The server exits
``--timeout`` seconds after its last browser disconnects (0: never), so viewers started per job clean up after
themselves. Geometry comes from the ``meshes/*.vtk`` files the pipeline wrote (LPS millimetres).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # headless hosts: no X server


def build_plotter(results: Path, vmax_mm: float = 4.0):
    """A pyvista plotter with the result folder's meshes; returns (plotter, actors by group)."""
    import pyvista as pv

    from pipeline.report.viewer import add_knee

    plotter = pv.Plotter(off_screen=True)
    meshes = {path.stem: pv.read(path) for path in sorted((results / "meshes").glob("*.vtk"))}
    return plotter, add_knee(plotter, meshes, vmax_mm=vmax_mm)


def build_server(results: Path, *, name: str = "kneescope-viewer"):
    from trame.app import get_server
    from trame.ui.vuetify3 import SinglePageLayout
    from trame.widgets import vtk as vtk_widgets
    from trame.widgets import vuetify3 as v3

    server = get_server(name, client_type="vue3")
    state, ctrl = server.state, server.controller
    plotter, actors = build_plotter(results)
    state.show_cartilage, state.show_menisci = True, True

    @state.change("show_cartilage", "show_menisci")
    def _toggle(show_cartilage, show_menisci, **_):
        for actor in actors["cartilage"]:
            actor.SetVisibility(bool(show_cartilage))
        for actor in actors["menisci"]:
            actor.SetVisibility(bool(show_menisci))
        ctrl.view_update()

    with SinglePageLayout(server) as layout:
        layout.title.set_text(f"KneeScope — {results.name}")
        with layout.toolbar:
            v3.VSpacer()
            v3.VSwitch(v_model=("show_cartilage", True), label="Cartilage", hide_details=True, classes="mx-2")
            v3.VSwitch(v_model=("show_menisci", True), label="Menisci", hide_details=True, classes="mx-2")
        with layout.content, v3.VContainer(fluid=True, classes="pa-0 fill-height"):
            view = vtk_widgets.VtkRemoteView(plotter.render_window, interactive_ratio=1)
            ctrl.view_update = view.update
            ctrl.view_reset_camera = view.reset_camera
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Interactive 3-D viewer of a KneeScope result folder")
    parser.add_argument("results", type=Path, help="folder written by `python -m pipeline analyze` or the app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--timeout", type=int, default=0, help="exit this many seconds after the last client left")
    args = parser.parse_args(argv)
    if not (args.results / "meshes").is_dir():
        raise SystemExit(f"{args.results} has no meshes/ folder: give a KneeScope result folder")
    server = build_server(args.results)
    server.start(host=args.host, port=args.port, open_browser=False, timeout=args.timeout)


if __name__ == "__main__":
    main()
