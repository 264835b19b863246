"""Interactive trame viewers, one small server per job on demand (``app/trame_viewer.py``).

Each viewer is a separate process listening on 127.0.0.1 only, whatever address the app serves, and it answers
only requests that carry its own unguessable token (sent in a header by the app's proxy, app/viewer_routes.py, which
checks the app's login first). So a viewer is reachable only through the app's authenticated route
``<root>/viewer/<token>/``, from any browser that can reach the app, behind Caddy or not.

Viewers never outlive the app: each one reads a pipe from the app and exits when it closes, which the kernel does
when the app exits for any reason (SIGTERM, crash, kill), not only on a clean shutdown. A viewer also exits five
minutes after its last browser tab closes, and at most ``max_viewers`` run at once (the oldest is stopped first).
"""

from __future__ import annotations

import atexit
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

VIEWER_PORTS = range(18000, 19000)
IDLE_EXIT_S = 300
TOKEN_ENV = "KNEESCOPE_VIEWER_TOKEN"  # the environment, not argv: argv is visible to every local user in `ps`
TOKEN_HEADER = "X-KneeScope-Viewer"  # how the app's proxy hands a viewer its token


@dataclass(frozen=True)
class Viewer:
    token: str
    port: int
    process: subprocess.Popen


class ViewerPool:
    def __init__(self, *, max_viewers: int = 4):
        self.max_viewers = max_viewers
        self._running: dict[Path, Viewer] = {}
        self._lock = threading.Lock()
        atexit.register(self.close_all)

    def open(self, results: Path) -> Viewer:
        """A viewer of ``results`` (started if needed; waits until it answers)."""
        with self._lock:
            self._reap()
            if results in self._running:
                return self._running[results]
            while len(self._running) >= self.max_viewers:
                _stop(self._running.pop(next(iter(self._running))))
            viewer = _start(results)
            self._running[results] = viewer
        _wait_for_port(viewer)
        return viewer

    def find(self, token: str) -> Viewer | None:
        """The running viewer with this token (constant-time comparison), or None."""
        with self._lock:
            self._reap()
            viewers = list(self._running.values())
        found = None
        for viewer in viewers:
            if secrets.compare_digest(viewer.token.encode(), token.encode()):
                found = viewer
        return found

    def close_all(self) -> None:
        with self._lock:
            for viewer in self._running.values():
                _stop(viewer)
            self._running.clear()

    def _reap(self) -> None:
        for key in [k for k, v in self._running.items() if v.process.poll() is not None]:
            del self._running[key]


def _start(results: Path) -> Viewer:
    token = secrets.token_urlsafe(24)
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.trame_viewer",
            str(results),
            "--port",
            str(port),
            "--timeout",
            str(IDLE_EXIT_S),
            "--exit-with-parent",
        ],
        stdin=subprocess.PIPE,  # never written: it closes when the app exits, and the viewer follows
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, TOKEN_ENV: token},
    )
    return Viewer(token, port, process)


def _stop(viewer: Viewer) -> None:
    viewer.process.terminate()
    try:
        viewer.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        viewer.process.kill()


def _free_port() -> int:
    for port in VIEWER_PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for a 3-D viewer (18000-18999 all in use)")


def _wait_for_port(viewer: Viewer, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if viewer.process.poll() is not None:
            raise RuntimeError("the 3-D viewer stopped while starting")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", viewer.port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError("the 3-D viewer did not start within a minute")
