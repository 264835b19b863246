"""Launch the app: settings -> services (engine loaded once) -> page -> Gradio queue -> server."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read at gradio import; the network may be closed

logger = logging.getLogger("kneescope")


def run(settings) -> None:
    from .startup import build_services
    from .ui import build_demo

    services = build_services(settings)
    demo = build_demo(services, settings)
    # One job at a time on the GPU: every heavy event shares concurrency_id "gpu"; a bounded queue beyond it.
    demo.queue(default_concurrency_limit=1, max_size=settings.max_queue)
    if settings.share:
        logger.info("--share: asking Gradio for a public link (needs internet; the local server runs regardless)")
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        root_path=settings.root_path or None,
        share=settings.share,
        auth=settings.auth,
        max_file_size=f"{settings.max_upload_mb}mb",
        show_error=False,
        footer_links=["gradio"],
    )


def main(argv: list[str] | None = None) -> None:
    from .settings import AppSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(AppSettings.from_args(argv))
