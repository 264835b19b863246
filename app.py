"""KneeScope web app: `python app.py --help`. Wiring only; the page is app/ui.py, the analysis is pipeline/."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read at gradio import; the network may be closed


def main(argv: list[str] | None = None) -> None:
    from app.settings import AppSettings
    from app.startup import build_services
    from app.ui import build_demo

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = AppSettings.from_args(argv)
    services = build_services(settings)
    demo = build_demo(services, settings)
    demo.queue(default_concurrency_limit=1, max_size=settings.max_queue)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        root_path=settings.root_path or None,
        share=settings.share,
        auth=settings.auth,
        max_file_size=f"{settings.max_upload_mb}mb",
        allowed_paths=[],
        show_error=False,
        footer_links=["gradio"],
    )


if __name__ == "__main__":
    main()
