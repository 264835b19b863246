"""A KneeScope app launched in-process on a free port, for gradio_client and browser tests."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(workdir: Path, *, engine=None, max_upload_mb: int = 64, max_queue: int = 8, root_path: str = ""):
    from app.settings import AppSettings
    from app.startup import build_services
    from app.ui import build_demo
    from pipeline.engine import Engine

    settings = AppSettings(workdir=workdir, max_upload_mb=max_upload_mb, max_queue=max_queue, root_path=root_path)
    services = build_services(settings, engine=engine or Engine())
    demo = build_demo(services, settings)
    demo.queue(default_concurrency_limit=1, max_size=settings.max_queue)
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        max_file_size=f"{max_upload_mb}mb",
        show_error=False,
        root_path=root_path or None,
    )
    try:
        yield url, services
    finally:
        demo.close()
        if services.viewers is not None:
            services.viewers.close_all()
