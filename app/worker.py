"""A job's work in a worker thread, so the page can show progress, the image and the labels before the work ends.

The engine reports progress and hands over the image and label map as soon as they exist (``on_volume``); the
page's generator turns those events into updates. Cancel sets the job's event; the worker raises at its next
progress report, so a cancelled or abandoned job stops instead of running on; the page's generator does not wait for
that report: it ends within ``CANCEL_POLL_S`` of Cancel (Gradio's own ``/cancel`` waits for it to end).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

from pipeline.engine import Engine
from pipeline.progress import ProgressFn
from pipeline.request import AnalysisRequest

from .jobs import Job

CANCEL_POLL_S = 0.2
#: emit(kind, value): hand an event to the page from inside the work.
Emit = Callable[[str, object], None]


def stream_in_thread(
    work: Callable[[ProgressFn, Emit], object], job: Job, *, tick_s: float | None = None
) -> Iterator[tuple[str, object]]:
    """``work(report, emit)`` in a thread; yields ("progress", (fraction, message)), whatever it emits, ("tick",
    None) after ``tick_s`` seconds without news (the page's clock), and finally ("result", its return value). The
    worker's exception is re-raised here."""
    events: queue.Queue = queue.Queue()

    def report(fraction: float, message: str) -> None:
        job.check_cancelled()  # raising here stops the work at its next progress report
        events.put(("progress", (fraction, message)))

    def run() -> None:
        try:
            events.put(("result", work(report, lambda kind, value: events.put((kind, value)))))
        except BaseException as exc:
            events.put(("error", exc))

    worker = threading.Thread(target=run, name=f"job-{job.token[:8]}", daemon=True)
    worker.start()
    last = time.monotonic()
    while True:
        try:
            kind, value = events.get(timeout=CANCEL_POLL_S)
        except queue.Empty:
            job.check_cancelled()  # the page's generator ends within CANCEL_POLL_S of Cancel
            if tick_s is not None and time.monotonic() - last >= tick_s:
                last = time.monotonic()
                yield "tick", None
            continue
        last = time.monotonic()
        if kind == "error":
            raise value  # type: ignore[misc]
        yield kind, value
        if kind == "result":
            return


def run_in_worker(
    engine: Engine, job: Job, request: AnalysisRequest, *, tick_s: float | None = None
) -> Iterator[tuple[str, object]]:
    """``engine.run(request)`` in a thread; yields ("progress", (fraction, message)), ("image" | "labels", Volume),
    ("tick", None) with ``tick_s``, and finally ("result", KneeAnalysis)."""
    return stream_in_thread(
        lambda report, emit: engine.run(request, progress=report, on_volume=emit), job, tick_s=tick_s
    )
