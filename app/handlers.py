"""Callbacks of the heavy events: UI values -> the engine (in a worker) -> output values. No layout (see ui.py).

Every failure the pipeline explains (KneePipelineError) reaches the user as its own message; anything else is
logged with its traceback and shown as a short generic message, never as a stack trace.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from pipeline.diskspace import is_disk_full
from pipeline.errors import DiskFullError, KneePipelineError
from pipeline.request import AnalysisRequest

from . import result_page, slice_images
from .disk_guard import ensure_room_for_a_job
from .examples import example_inputs, qdess_example_inputs
from .jobs import Job, JobCancelled
from .messages import user_message
from .startup import Services
from .uploads import UploadRefused, copy_input
from .user_errors import server_disk_full, user_error
from .worker import run_in_worker

logger = logging.getLogger(__name__)

#: Order of the outputs of the run events (ui.py builds its output list from these names).
OUTPUT_NAMES = (
    "status",
    "job_token",
    "axial",
    "coronal",
    "sagittal",
    "axial_slider",
    "coronal_slider",
    "sagittal_slider",
    "colorbar",
    "thickness_table",
    "structure_table",
    "t2_table",
    "warnings",
    "downloads",
    "legend",
    "shape_summary",
)
T2_CHOICES = {"Automatic": None, "On": True, "Off": False}
EXAMPLES = {"knee": example_inputs, "qdess": qdess_example_inputs}


@dataclass(frozen=True)
class PageOptions:
    """The run options as the page sends them."""

    scheme: str
    model: str
    mirroring: bool
    t2_choice: str
    opacity: float
    shape: bool


def outputs(**values) -> tuple:
    """A full output tuple: given names get their values, the others are left unchanged."""
    unknown = set(values) - set(OUTPUT_NAMES)
    if unknown:
        raise KeyError(f"unknown outputs {unknown}")
    return tuple(values.get(name, gr.skip()) for name in OUTPUT_NAMES)


def run_upload(
    services: Services,
    image_path: str | None,
    labels_path: str | None,
    options: PageOptions,
    session: str | None,
    progress: gr.Progress,
    submitted_at: float | None = None,
) -> Iterator[tuple]:
    """The Run button: analyse what the user uploaded, from private copies in the job's folder."""
    if not image_path and not labels_path:
        raise user_error("Upload a knee MRI (or a label map), or click 'Run the example'.")

    def inputs(job: Job) -> tuple[str | None, str | None]:
        # Checked when the job's turn comes (a job cancelled while waiting is refused before this).
        uploads = verified_uploads(services, session, image=image_path, labels=labels_path)
        for path in uploads.values():
            if path and path.stat().st_size > services.max_upload_mb * 1024 * 1024:
                raise user_error(f"{path.name} is larger than the {services.max_upload_mb} MB upload limit.")
        image, labels = uploads["image"], uploads["labels"]
        return (
            str(copy_input(image, job.inputs / "image")) if image else None,
            str(copy_input(labels, job.inputs / "labels")) if labels else None,
        )

    yield from _run(services, inputs, options, session, progress, submitted_at)


def verified_uploads(services: Services, session: str | None, **paths: str | None) -> dict[str, Path | None]:
    """Each given path checked to be a real upload of this server (never another job's file), and claimed for the
    session so that it is removed when the session ends."""
    verified: dict[str, Path | None] = {}
    for key, path in paths.items():
        if not path or services.uploads is None:  # no registry: handlers called directly (tests, notebooks)
            verified[key] = Path(path) if path else None
            continue
        what = {"image": "The image", "labels": "The label map"}.get(key, f"The {key} file")
        try:
            verified[key] = services.uploads.verify(path, what=what)
        except UploadRefused as exc:
            raise user_error(str(exc)) from None
        services.uploads.claim(session, path)
    return verified


def run_example(
    services: Services,
    which: str,
    options: PageOptions,
    session: str | None,
    progress: gr.Progress,
    submitted_at: float | None = None,
) -> Iterator[tuple]:
    """An example button: a synthetic knee ("knee") or qDESS series ("qdess"), copied into the job's folder."""
    make = EXAMPLES[which]
    with_labels = not services.engine.can_segment

    def inputs(job: Job) -> tuple[str | None, str | None]:
        return make(services.store.root.parent, job.inputs, with_labels=with_labels)

    yield from _run(services, inputs, options, session, progress, submitted_at)


def start_job(services: Services, session: str | None, submitted_at: float | None, what: str) -> Job:
    """A new job for the session; a job cancelled while it waited in the queue never starts, and its uploads go;
    none starts on a disk without room for its results."""
    ensure_room_for_a_job(services)
    try:
        return services.store.create(session, submitted_at)
    except JobCancelled:
        if services.uploads is not None:
            services.uploads.release(session)  # its uploads go too, as if Cancel had come after they arrived
        raise user_error(f"Cancelled: the {what} was stopped before it started, at your request.") from None


@contextlib.contextmanager
def page_errors(job: Job, what: str) -> Iterator[None]:
    """Failures as the page shows them: the pipeline's own message (no server paths), never a traceback."""
    try:
        yield
    except JobCancelled:
        raise user_error(f"Cancelled: the {what} was stopped at your request.") from None
    except DiskFullError as exc:
        raise server_disk_full(exc) from None
    except KneePipelineError as exc:
        raise user_error(user_message(str(exc))) from None
    except gr.Error:
        raise
    except Exception as exc:  # unknown failure: full details to the log, a short message to the page
        if is_disk_full(exc, job.folder):
            raise server_disk_full() from None
        logger.error("%s %s failed:\n%s", what, job.token, traceback.format_exc())
        raise gr.Error(
            f"Unexpected {type(exc).__name__}; the details are in the server log (job {job.token[:8]}).",
            print_exception=False,  # logged just above
        ) from None


def _run(
    services: Services,
    inputs: Callable[[Job], tuple[str | None, str | None]],
    options: PageOptions,
    session: str | None,
    progress: gr.Progress,
    submitted_at: float | None,
) -> Iterator[tuple]:
    job = start_job(services, session, submitted_at, "job")
    succeeded = False
    try:
        with page_errors(job, "job"):
            image_path, labels_path = inputs(job)
            request = AnalysisRequest(
                image=image_path,
                labels=labels_path,
                label_scheme=options.scheme,
                model=options.model if options.model in _model_names(services) else None,
                mirroring=bool(options.mirroring),
                t2=T2_CHOICES.get(options.t2_choice),
                shape_model=bool(options.shape),
                limits=services.limits,
            )
            progress(0.01, desc="Loading")
            yield from _job_events(services, job, request, options.opacity, progress)
            succeeded = True
    finally:
        job.cancel.set()  # a worker still running (page closed, job cancelled) stops at its next report
        services.store.finish(session, job, keep=succeeded or job.result is not None)


def _job_events(services: Services, job: Job, request: AnalysisRequest, opacity: float, progress) -> Iterator[tuple]:
    """Turn the worker's reports into page updates, in order."""
    image = None
    for kind, value in run_in_worker(services.engine, job, request):
        if kind == "progress":
            fraction, message = value  # type: ignore[misc]
            progress(0.02 + 0.9 * fraction, desc=message)
        elif kind == "image":
            image = value
            stack = slice_images.build_stack(image, None)  # type: ignore[arg-type]
            services.store.remember(job, stack=stack)
            status = "Image loaded; segmenting…" if not request.labels else "Image loaded; reading labels…"
            yield outputs(status=status, job_token=job.token, **_slices(stack, opacity, reset=True))
        elif kind == "labels":
            stack = slice_images.build_stack(image, value)  # type: ignore[arg-type]
            services.store.remember(job, stack=stack)
            source = f"given label map ({request.label_scheme} scheme)" if request.labels else "segmented"
            yield outputs(
                status=f"Labels ready ({source}); measuring…",
                job_token=job.token,
                legend=slice_images.legend_html(),
                **_slices(stack, opacity, reset=image is None),
            )
        elif kind == "result":
            yield _finished(services, job, value, opacity, progress)


def _finished(services: Services, job: Job, result, opacity: float, progress) -> tuple:
    progress(0.95, desc="Writing results")
    files = result.write(job.folder / "results")
    stack = slice_images.build_stack(result.image, result.labels, result.t2_map)
    services.store.remember(job, result=result, stack=stack)
    return outputs(
        status=result_page.done_message(result, services.retention_hours),
        job_token=job.token,
        **result_page.result_outputs(job, result, files),
        **_slices(stack, opacity, reset=False),
    )


def _slices(stack: slice_images.SliceStack, opacity: float, *, reset: bool) -> dict:
    values = {}
    for plane in slice_images.PLANES:
        n = stack.n_slices(plane)
        middle = n // 2
        values[plane] = slice_images.render_slice(stack, plane, middle, opacity=opacity, overlay="labels")
        values[f"{plane}_slider"] = (
            gr.Slider(minimum=0, maximum=max(n - 1, 1), value=middle, step=1) if reset else gr.skip()
        )
    return values


def _model_names(services: Services) -> set[str]:
    engine = services.engine
    return {name for name, ok, _ in engine.model_choices() if ok} if engine.can_segment else set()


def t2_choice_for_upload(path: str | None):
    """T2 on for DICOM uploads (computed if the series is qDESS or MESE); off, with the reason, for other files."""
    from pipeline.t2 import t2_availability

    if not path:
        return gr.Radio(value="Automatic", interactive=True, info="Automatic: computed for a qDESS or MESE series")
    possible, reason = t2_availability(path)
    if possible:
        return gr.Radio(value="On", interactive=True, info=reason)
    return gr.Radio(value="Off", interactive=False, info=reason)


def submitted_at(request: gr.Request | None) -> float | None:
    """When the job's request reached the server (stamped by app/entrance.py), to tell queued-before-Cancel jobs."""
    from .entrance import arrival_time

    return arrival_time(getattr(request, "request", None))


def cancel(services: Services, session: str | None) -> str:
    """Cancel (page or API): stop this session's running job, void its queued ones, remove its uploads."""
    running = services.store.cancel(session)
    removed = services.uploads.release(session) if services.uploads is not None else 0
    parts = [
        "Cancelling the running job…" if running else "Nothing of yours is running.",
        "Jobs of yours waiting in the queue will not start.",
    ]
    if removed:
        parts.append("Your uploads were removed from the server.")
    return " ".join(parts)


def session_ended(services: Services, session: str | None) -> None:
    """The page was closed: stop what it left running, void what it left waiting (for good), remove its uploads."""
    services.store.cancel(session)
    if services.uploads is not None:
        services.uploads.release(session)


def remember_upload(services: Services, path: str | None, session: str | None) -> None:
    """An upload arrived in the page: note the session using it, so it goes when the session ends."""
    if services.uploads is not None:
        services.uploads.claim(session, path)
