"""Launch the app: settings -> services (engine loaded once) -> page -> Gradio queue -> server."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read at gradio import; the network may be closed

logger = logging.getLogger("kneescope")


def launch_options(settings, services) -> dict:
    """``demo.launch`` keywords shared by the server and the in-process test app: login (throttled), upload limit,
    the app's own authenticated route to the interactive viewers, and the arrival stamp that lets Cancel stop jobs
    still waiting in the queue."""
    from starlette.middleware import Middleware

    from .arrival import StampArrival
    from .login import ThrottledLogin
    from .viewer_proxy import viewer_routes

    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "root_path": settings.root_path or None,
        "auth": ThrottledLogin(*settings.auth) if settings.auth else None,
        "max_file_size": f"{settings.max_upload_mb}mb",
        "show_error": False,
        "app_kwargs": {"routes": viewer_routes(services.viewers), "middleware": [Middleware(StampArrival)]},
    }


def run(settings) -> None:
    from .startup import build_services
    from .ui import build_demo

    services = build_services(settings)
    demo = build_demo(services, settings)
    # One job at a time on the GPU: every heavy event shares concurrency_id "gpu"; a bounded queue beyond it.
    demo.queue(default_concurrency_limit=1, max_size=settings.max_queue)
    if settings.share:
        logger.info("--share: asking Gradio for a public link (needs internet; the local server runs regardless)")
    demo.launch(share=settings.share, footer_links=["gradio"], **launch_options(settings, services))


def main(argv: list[str] | None = None) -> None:
    from .settings import AppSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(AppSettings.from_args(argv))
