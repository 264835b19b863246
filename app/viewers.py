"""Interactive trame viewers, one small server per job on demand (``app/trame_viewer.py``).

Each viewer is a separate process on a port in VIEWER_PORTS, bound like the app; it exits by itself five minutes
after its last browser tab closes, and at most ``max_viewers`` run at once (the oldest is stopped first). Behind
Caddy, ``/viewer/<port>/`` is routed to it (see deploy/Caddyfile), so no extra port has to be opened.
"""

from __future__ import annotations

import atexit
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

VIEWER_PORTS = range(18000, 19000)  # must match the path_regexp in deploy/Caddyfile
IDLE_EXIT_S = 300


class ViewerPool:
    def __init__(self, *, host: str = "127.0.0.1", max_viewers: int = 4):
        self.host = host
        self.max_viewers = max_viewers
        self._running: dict[Path, tuple[int, subprocess.Popen]] = {}
        self._lock = threading.Lock()
        atexit.register(self.close_all)  # viewers never outlive the app

    def open(self, results: Path) -> int:
        """Port of a viewer for ``results`` (started if needed; waits until it answers)."""
        with self._lock:
            self._reap()
            if results in self._running:
                return self._running[results][0]
            while len(self._running) >= self.max_viewers:
                oldest = next(iter(self._running))
                self._running.pop(oldest)[1].terminate()
            port = _free_port(self.host)
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.trame_viewer",
                    str(results),
                    "--host",
                    self.host,
                    "--port",
                    str(port),
                    "--timeout",
                    str(IDLE_EXIT_S),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=Path(__file__).resolve().parents[1],
            )
            self._running[results] = (port, process)
        _wait_for_port(self.host, port, process)
        return port

    def close_all(self) -> None:
        with self._lock:
            for _, process in self._running.values():
                process.terminate()
            self._running.clear()

    def _reap(self) -> None:
        for key in [k for k, (_, p) in self._running.items() if p.poll() is not None]:
            del self._running[key]


def _free_port(host: str) -> int:
    for port in VIEWER_PORTS:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for a 3-D viewer (18000-18999 all in use)")


def _wait_for_port(host: str, port: int, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    probe = "127.0.0.1" if host in ("0.0.0.0", "") else host
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the 3-D viewer stopped while starting")
        with socket.socket() as s:
            if s.connect_ex((probe, port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError("the 3-D viewer did not start within a minute")
