"""A KneeScope app launched in-process on a free port, for gradio_client and browser tests."""

from __future__ import annotations

import os
import socket
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from pipeline.engine import Engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(
    workdir: Path,
    *,
    engine=None,
    max_upload_mb: int = 64,
    max_queue: int = 8,
    root_path: str = "",
    settings=None,
):
    """The app as `python app.py` runs it (the same services, page and launch options), on a free port, with its
    uploads in ``workdir/gradio``. ``settings`` (AppSettings) overrides the keyword shortcuts."""
    from app.main import launch_options
    from app.settings import AppSettings
    from app.startup import build_services
    from app.ui import build_demo

    settings = settings or AppSettings(
        workdir=workdir, max_upload_mb=max_upload_mb, max_queue=max_queue, root_path=root_path
    )
    settings = replace(settings, host="127.0.0.1", port=free_port())
    previous = os.environ.pop("GRADIO_TEMP_DIR", None)  # each test app gets its own upload folder
    services = build_services(settings, engine=engine or Engine())
    demo = build_demo(services, settings)
    demo.queue(default_concurrency_limit=1, max_size=settings.max_queue)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(settings, services))
    try:
        yield url, services
    finally:
        demo.close()
        if services.viewers is not None:
            services.viewers.close_all()
        os.environ.pop("GRADIO_TEMP_DIR", None)
        if previous is not None:
            os.environ["GRADIO_TEMP_DIR"] = previous


class GatedEngine(Engine):
    """The real label-map engine; its analyses wait while ``gate`` is closed (to hold the app's one lane). It records
    the case ids it started (``started``), finished (``finished``) and that failed (``failed``)."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.started: list[str | None] = []
        self.finished: list[str | None] = []
        self.failed: list[str | None] = []

    def analyze(self, image=None, **kwargs):
        self.started.append(kwargs.get("case_id"))
        self.gate.wait(timeout=120)
        try:
            result = super().analyze(image, **kwargs)
        except BaseException:
            self.failed.append(kwargs.get("case_id"))
            raise
        self.finished.append(kwargs.get("case_id"))
        return result
