"""A job's analysis in a worker thread, so the page can show the image and labels before the analysis ends.

The engine reports progress and hands over the image and label map as soon as they exist (``on_volume``); the
page's generator turns those events into updates. Cancel sets the job's event; the worker raises at its next
progress report, so a cancelled or abandoned job stops instead of running on; the page's generator does not wait for
that report: it ends within ``CANCEL_POLL_S`` of Cancel (Gradio's own ``/cancel`` waits for it to end).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from pipeline.engine import Engine
from pipeline.request import AnalysisRequest

from .jobs import Job

CANCEL_POLL_S = 0.2


def run_in_worker(engine: Engine, job: Job, request: AnalysisRequest) -> Iterator[tuple[str, object]]:
    """``engine.run(request)`` in a thread; yields ("progress", (fraction, message)), ("image" | "labels", Volume) and
    finally ("result", KneeAnalysis). The worker's exception is re-raised here."""
    events: queue.Queue = queue.Queue()

    def report(fraction: float, message: str) -> None:
        job.check_cancelled()  # raising here stops the pipeline at its next progress report
        events.put(("progress", (fraction, message)))

    def work() -> None:
        try:
            result = engine.run(request, progress=report, on_volume=lambda kind, v: events.put((kind, v)))
            events.put(("result", result))
        except BaseException as exc:
            events.put(("error", exc))

    worker = threading.Thread(target=work, name=f"job-{job.token[:8]}", daemon=True)
    worker.start()
    while True:
        try:
            kind, value = events.get(timeout=CANCEL_POLL_S)
        except queue.Empty:
            job.check_cancelled()
            continue
        if kind == "error":
            raise value  # type: ignore[misc]
        yield kind, value
        if kind == "result":
            return
