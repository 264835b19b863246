"""Launch the app: settings -> services (engine loaded once) -> page -> Gradio queue -> server."""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read at gradio import; the network may be closed

logger = logging.getLogger("kneescope")


def launch_options(settings, services) -> dict:
    """``demo.launch`` keywords shared by the server and the in-process test app: login (throttled), upload limit,
    the app's own authenticated route to the interactive viewers, and its middleware (outermost first): security
    headers on every response, the client's address for the login throttle, the login on Gradio's session routes,
    uploads refused on a full disk, and the arrival stamp that lets Cancel stop jobs still waiting in the queue."""
    from starlette.middleware import Middleware

    from .disk_guard import UploadSpaceGuard
    from .entrance import QueueEntrance
    from .login import ClientAddress, ThrottledLogin
    from .security_headers import SecurityHeaders
    from .session_routes import SessionRouteGuard, keep_session_hashes_out_of_logs
    from .ui import PAGE_CSS
    from .viewer_routes import viewer_routes

    keep_session_hashes_out_of_logs()
    keep_free = services.retention.min_free_bytes if services.retention is not None else 0
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(ClientAddress),
        Middleware(SessionRouteGuard, auth_required=settings.auth is not None, store=services.store),
    ]
    if services.uploads is not None:
        middleware.append(Middleware(UploadSpaceGuard, folder=services.uploads.folder, keep_free_bytes=keep_free))
    middleware.append(Middleware(QueueEntrance, uploads=services.uploads))

    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "root_path": settings.root_path or None,
        "auth": ThrottledLogin(*settings.auth) if settings.auth else None,
        "auth_message": LOGIN_NOTICE if settings.auth else None,
        "max_file_size": f"{settings.max_upload_mb}mb",
        "show_error": False,
        "app_kwargs": {
            "routes": viewer_routes(services.viewers),
            "middleware": middleware,
        },
        "allowed_paths": job_folders_to_allow(services.store.root),
        # Gradio keeps every session's state (about 0.3-1 MB) until this many newer sessions evict it: bounded here
        # so that page loads and API clients over weeks cannot fill the host's memory.
        "state_session_capacity": SESSION_CAPACITY,
        "css_paths": [PAGE_CSS],
    }


SESSION_CAPACITY = 2000
#: Shown on the login page: Gradio's page says nothing when a login is delayed (HTTP 429; app/login.py).
LOGIN_NOTICE = (
    "After several failed logins under one name, its logins are delayed (seconds at first, at most 5 minutes). "
    "If Login does nothing, wait a little and try again."
)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Like MALLOC_ARENA_MAX=2 (unless that is set): glibc gives threads their own malloc arenas, up to 8 per core,
    and keeps what each one freed; with a worker thread per job and Gradio's thread pool the server's RSS grew by
    about 5 MB per client session, and with two arenas by well under 1 MB (bench/app_soak.py). False off glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-8, arenas))  # -8: M_ARENA_MAX
    except (OSError, AttributeError):
        return False


def job_folders_to_allow(jobs: Path) -> list[str] | None:
    """Gradio takes a returned file (slices, GLB, downloads) only from the working directory, the system temp dir or
    ``allowed_paths``: with the workdir elsewhere (/var/lib/kneescope/work under systemd, /work in Docker) every job
    would fail, so the jobs folder is allowed then. Its files are served only to whoever knows a job's random
    22-character token, the same protection as Gradio's own cache of every returned file."""
    real = jobs.resolve()
    if any(real.is_relative_to(Path(folder).resolve()) for folder in (tempfile.gettempdir(), os.getcwd())):
        return None
    return [str(real)]


#: How often (s) Gradio's queue looks for work while it has none or its one lane is busy, and sends a running job's
#: progress. Gradio's own 1 ms and 10 ms on Linux cost an idle app ~50 ms of CPU every second (bench/app_idle_cpu.py).
#: Ours are Gradio's own on Windows: a job starts at most 50 ms late, and a progress bar moves ten times a second.
QUEUE_POLL_S = 0.05
PROGRESS_POLL_S = 0.1


def queue_jobs(demo, settings) -> None:
    """The app's Gradio queue: one job at a time on the GPU (every heavy event shares concurrency_id "gpu"), a
    bounded queue beyond it, polled as said above. The polls are private attributes of Gradio's queue; if a newer
    Gradio lacks them, it keeps its own (and tests/app/test_queue_poll.py fails to say so)."""
    demo.queue(default_concurrency_limit=1, max_size=settings.max_queue)
    queue = getattr(demo, "_queue", None)
    for name, seconds in (("sleep_when_free", QUEUE_POLL_S), ("progress_update_sleep_when_free", PROGRESS_POLL_S)):
        if isinstance(getattr(queue, name, None), float):
            setattr(queue, name, max(getattr(queue, name), seconds))


def run(settings) -> None:
    limit_malloc_arenas()  # before the first worker threads allocate
    from .startup import build_services
    from .ui import build_demo

    services = build_services(settings)
    demo = build_demo(services, settings)
    queue_jobs(demo, settings)
    if settings.share:
        logger.info("--share: asking Gradio for a public link (needs internet; the local server runs regardless)")
    demo.launch(share=settings.share, footer_links=["gradio"], **launch_options(settings, services))


def main(argv: list[str] | None = None) -> None:
    from pipeline.log_levels import quiet_noisy_libraries

    from .settings import AppSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_noisy_libraries()
    run(AppSettings.from_args(argv))
