"""Callbacks of the heavy events: UI values -> the engine (in a worker) -> output values. No layout (see ui.py).

Every failure the pipeline explains (KneePipelineError) reaches the user as its own message; anything else is
logged with its traceback and shown as a short generic message, never as a stack trace.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from pipeline.diskspace import is_disk_full
from pipeline.errors import DiskFullError, KneePipelineError
from pipeline.request import AnalysisRequest

from . import result_page, slice_images, slice_view, status
from .disk_guard import ensure_room_for_a_job
from .examples import example_inputs, qdess_example_inputs
from .input_card import NOTHING, InputFacts, RunPlan, card_html, plan_run
from .jobs import Job, JobCancelled
from .messages import user_message
from .result_page import OVERLAY_LABELS
from .startup import Services
from .status import JobClock, plain_stage
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
    "numbers",
    "maps",
    "overlay",
    "warnings",
    "downloads",
    "legend",
    "level",
    "width",
)
T2_CHOICES = {"Automatic": None, "On": True, "Off": False}
EXAMPLES = {"knee": example_inputs, "qdess": qdess_example_inputs}
#: Seconds between clock updates of the status area while nothing else is reported.
TICK_S = 1.0
#: Least seconds between two progress updates sent to the page.
PROGRESS_EVERY_S = 0.4


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


def with_error_banner(
    events: Iterator[tuple], *, what: str = "job", banner: Callable[[str], tuple] | None = None
) -> Iterator[tuple]:
    """The run's updates; a failure becomes the red banner in the status area (it stays until the next run) and is
    raised again for API clients, without a toast or a traceback in the server log (where it was raised, the reason
    was logged once: app/user_errors.py).
    ``banner``: the outputs that show the banner's HTML (default: the analysis's status output)."""
    try:
        yield from events
    except gr.Error as exc:
        reason = str(exc.message)
        yield (banner or (lambda text: outputs(status=text)))(status.error(reason))
        raise gr.Error(reason, visible=False, print_exception=False) from None


def run_upload(
    services: Services,
    image_path: str | None,
    labels_path: str | None,
    options: PageOptions,
    session: str | None,
    submitted_at: float | None = None,
) -> Iterator[tuple]:
    """The Run button: analyse what the user uploaded, from private copies in the job's folder; a label map dropped
    in the MRI box is analysed as a label map, and a combination that cannot work is refused before any work."""
    if not image_path and not labels_path:
        raise user_error(NOTHING)

    def inputs(job: Job) -> tuple[str | None, str | None]:
        # Checked when the job's turn comes (a job cancelled while waiting is refused before this).
        uploads = verified_uploads(services, session, image=image_path, labels=labels_path)
        for path in uploads.values():
            if path and path.stat().st_size > services.max_upload_mb * 1024 * 1024:
                raise user_error(f"{path.name} is larger than the {services.max_upload_mb} MB upload limit.")
        plan = upload_plan(services, uploads["image"], uploads["labels"])
        if plan.refusal:
            raise user_error(plan.refusal)
        return (
            str(copy_input(plan.image, job.inputs / "image")) if plan.image else None,
            str(copy_input(plan.labels, job.inputs / "labels")) if plan.labels else None,
        )

    yield from _run(services, inputs, options, session, submitted_at)


def upload_plan(services: Services, image: Path | str | None, labels: Path | str | None) -> RunPlan:
    """What Run will do with these uploads (read once per file; the upload event has usually read them already)."""
    image_facts = services.inputs.facts(image, services.limits)[0] if image else None
    labels_facts = services.inputs.facts(labels, services.limits)[0] if labels else None
    return plan_run(image_facts, labels_facts, image, labels, can_segment=services.engine.can_segment)


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
    submitted_at: float | None = None,
) -> Iterator[tuple]:
    """An example button: a synthetic knee ("knee") or qDESS series ("qdess"), copied into the job's folder."""
    make = EXAMPLES[which]
    with_labels = not services.engine.can_segment

    def inputs(job: Job) -> tuple[str | None, str | None]:
        return make(services.store.root.parent, job.inputs, with_labels=with_labels)

    yield from _run(services, inputs, options, session, submitted_at)


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
    submitted_at: float | None,
) -> Iterator[tuple]:
    clock = JobClock()
    job = start_job(services, session, submitted_at, "job")
    succeeded = False
    try:
        with page_errors(job, "job"):
            yield outputs(status=status.running("Checking the inputs", 0.0, clock), overlay=OVERLAY_LABELS)
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
            yield from _job_events(services, job, request, options.opacity, clock)
            succeeded = True
    finally:
        job.cancel.set()  # a worker still running (page closed, job cancelled) stops at its next report
        services.store.finish(session, job, keep=succeeded or job.result is not None)


def _job_events(
    services: Services, job: Job, request: AnalysisRequest, opacity: float, clock: JobClock
) -> Iterator[tuple]:
    """Turn the worker's reports into page updates, in order: the status area, then the slices as soon as the image
    and the labels exist, then the result."""
    image = None
    stage, fraction, sent = "Reading the image", 0.0, 0.0
    for kind, value in run_in_worker(services.engine, job, request, tick_s=TICK_S):
        if kind == "progress":
            fraction, message = value  # type: ignore[misc]
            stage = plain_stage(message)
            if time.monotonic() - sent < PROGRESS_EVERY_S:
                continue
        elif kind == "image":
            image = value
            stack = slice_images.build_stack(image, None)  # type: ignore[arg-type]
            services.store.remember(job, stack=stack)
            yield outputs(job_token=job.token, **_slices(stack, opacity, reset=True))
        elif kind == "labels":
            stack = slice_images.build_stack(image, value)  # type: ignore[arg-type]
            services.store.remember(job, stack=stack)
            yield outputs(
                job_token=job.token, legend=slice_images.legend_html(), **_slices(stack, opacity, reset=image is None)
            )
        elif kind == "result":
            yield outputs(status=status.running("Writing the report and result files", 0.95, clock))
            yield _finished(services, job, value, opacity)
            return
        sent = time.monotonic()
        yield outputs(status=status.running(stage, 0.02 + 0.9 * fraction, clock))


def _finished(services: Services, job: Job, result, opacity: float) -> tuple:
    results = result.to_dict()
    files = result.write(job.folder / "results", results=results)
    stack = slice_images.build_stack(result.image, result.labels, result.t2_map, side=result.laterality.side)
    services.store.remember(job, result=result, stack=stack)
    source = status.segmentation_source(result.provenance)
    return outputs(
        status=status.done(results, source, services.retention_hours),
        job_token=job.token,
        **result_page.result_outputs(job, result, results, files),
        **_slices(stack, opacity, reset=False),
    )


def _slices(stack: slice_images.SliceStack, opacity: float, *, reset: bool) -> dict:
    """The three views at their middle slices (sliders reset to them when ``reset``), with the labels overlay and
    the automatic window."""
    values: dict = {}
    for plane in slice_images.PLANES:
        n = stack.n_slices(plane)
        middle = n // 2
        values[plane] = slice_view.view_html(stack, plane, middle, opacity=opacity, overlay="labels")
        values[f"{plane}_slider"] = (  # numbered from 1, as the views caption them
            gr.Slider(minimum=1, maximum=max(n, 2), value=middle + 1, step=1, label=f"{plane.capitalize()} slice")
            if reset
            else gr.skip()
        )
    if reset:
        values["level"], values["width"] = slice_images.AUTO_WINDOW
    return values


def _model_names(services: Services) -> set[str]:
    engine = services.engine
    return {name for name, ok, _ in engine.model_choices() if ok} if engine.can_segment else set()


def stack_for(services: Services, token: str | None):
    """The slices behind the page's token: a job's (image, labels, T2) or an upload's preview; None when gone."""
    job = services.store.get(token)
    if job is not None:
        return job.stack
    return services.inputs.stack(token)


#: Outputs of the upload event, in order (ui.py wires them).
UPLOAD_OUTPUTS = ("card", "t2", "job_token", "axial", "coronal", "sagittal", "axial_slider", "coronal_slider",
                  "sagittal_slider", "legend", "level", "width")  # fmt: skip


def inspect_uploads(services: Services, image_path: str | None, labels_path: str | None) -> tuple:
    """A file arrived (or left) in an upload box: the card saying what the files are and what Run will do, the T2
    choice that fits, and the image at once in the slice viewer (a preview; its sliders work before any run)."""
    image_facts, image_volume = _inspected(services, image_path, "The image")
    labels_facts, labels_volume = _inspected(services, labels_path, "The label map")
    plan = plan_run(image_facts, labels_facts, image_path, labels_path, can_segment=services.engine.can_segment)
    card = card_html([f for f in (image_facts, labels_facts) if f is not None], plan)
    values: dict = {"card": card, "t2": _t2_choice(image_facts)}
    preview = _preview(image_facts, image_volume, labels_facts, labels_volume)
    if preview is not None:
        token = "preview-" + secrets.token_urlsafe(12)
        services.inputs.keep_stack(token, preview)
        values["job_token"] = token
        values.update(_slices(preview, 0.5, reset=True))
        values["legend"] = slice_images.legend_html()
    return tuple(values.get(name, gr.skip()) for name in UPLOAD_OUTPUTS)


def _inspected(services: Services, path: str | None, what: str):
    """(facts, volume) of an upload; a path this server did not receive as an upload is not read."""
    if not path:
        return None, None
    if services.uploads is not None:
        try:
            services.uploads.verify(path, what=what)
        except UploadRefused as exc:
            return InputFacts(Path(path).name, None, error=str(exc)), None
    return services.inputs.facts(path, services.limits)


def _preview(image_facts, image_volume, labels_facts, labels_volume) -> slice_images.SliceStack | None:
    """The slices of what was just read (a cached file is not read again: its preview was shown already)."""
    if image_volume is None and labels_volume is None:
        return None
    image = image_volume if image_facts is not None and not image_facts.is_label_map else None
    labels = image_volume if image_facts is not None and image_facts.is_label_map else None
    if labels_volume is not None and labels_facts is not None and labels_facts.is_label_map:
        if image is None and image_facts is not None and not image_facts.is_label_map:
            return None  # the image's preview is on the page already
        if image is None or not labels_volume.same_grid(image):  # another grid: the run aligns it, not the preview
            labels = labels_volume
    if labels is not None:
        from pipeline.io import to_canonical

        try:
            labels = to_canonical(labels, "auto").volume
        except KneePipelineError:
            labels = None
    side = next((f.side for f in (image_facts, labels_facts) if f is not None and f.side), None)
    if image is None and labels is None:
        return None
    return slice_images.build_stack(image, labels, side=side)


def _t2_choice(facts: InputFacts | None):
    """T2 on for a qDESS or MESE series; off, with the reason, for any other file; automatic before an upload."""
    if facts is None:
        return gr.Radio(value="Automatic", interactive=True, info="Automatic: computed for a qDESS or MESE series")
    if facts.sequence:
        return gr.Radio(value="On", interactive=True, info=facts.t2_note)
    return gr.Radio(value="Off", interactive=False, info=facts.t2_note or "T2 needs a qDESS or MESE DICOM series.")


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
