"""Interactive 3-D viewer of one result folder, served by trame (server-side VTK rendering, works headless).

    python -m app.trame_viewer OUT/ --port 8090

Bones coloured by cartilage thickness with a scalar bar, cartilage and menisci toggled on/off. The server exits
``--timeout`` seconds after its last browser disconnects (0: never), so viewers started per job clean up after
themselves. Geometry comes from the ``meshes/*.vtk`` files the pipeline wrote (LPS millimetres).

Started by the app (app/viewer_processes.py), it listens on 127.0.0.1, answers only requests carrying the token given in
$KNEESCOPE_VIEWER_TOKEN (the app's proxy adds it after checking the login), and with ``--exit-with-parent`` exits
as soon as its standard input closes, that is when the app that started it exits, however it exits.
"""

from __future__ import annotations

import argparse
import os
import secrets
import threading
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


def require_token(server, token: str) -> None:
    """Refuse (403) every HTTP and websocket request without the viewer's token header."""
    from aiohttp import web

    from .viewer_processes import TOKEN_HEADER

    expected = token.encode()

    @web.middleware
    async def check(request, handler):
        given = request.headers.get(TOKEN_HEADER, "").encode()
        if not secrets.compare_digest(given, expected):
            return web.Response(status=403, text="Open the viewer from the KneeScope page.")
        return await handler(request)

    server.controller.on_server_bind.add(lambda wslink_server: wslink_server.app.middlewares.append(check))


def exit_with_parent() -> None:
    """Exit when standard input closes: the app holds the other end of the pipe, and the kernel closes it when the
    app exits, even on SIGKILL, so a viewer never keeps serving a patient's knee on its own."""

    def watch() -> None:
        while os.read(0, 4096):  # unbuffered: a daemon thread must not hold the stdin buffer's lock at exit
            pass
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Interactive 3-D viewer of a KneeScope result folder")
    parser.add_argument("results", type=Path, help="folder written by `python -m pipeline analyze` or the app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--timeout", type=int, default=0, help="exit this many seconds after the last client left")
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when standard input closes")
    args = parser.parse_args(argv)
    if not (args.results / "meshes").is_dir():
        raise SystemExit(f"{args.results} has no meshes/ folder: give a KneeScope result folder")
    if args.exit_with_parent:
        exit_with_parent()
    server = build_server(args.results)
    from .viewer_processes import TOKEN_ENV

    token = os.environ.pop(TOKEN_ENV, "")
    if token:
        require_token(server, token)
    server.start(host=args.host, port=args.port, open_browser=False, timeout=args.timeout)


if __name__ == "__main__":
    main()
