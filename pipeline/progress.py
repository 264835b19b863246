"""Progress reporting: one callback type for every stage, and a timer that reports and times named stages.

Pipeline functions take ``progress: ProgressFn | None``; the CLI adapts it to a tqdm bar and the app to
``gr.Progress``. A callback may raise (the app's Cancel does) to stop the work at the next report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: progress(fraction in [0, 1], message)
ProgressFn = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """A ProgressFn that ignores every report."""
    return None


def scaled(progress: ProgressFn | None, start: float, end: float, prefix: str = "") -> ProgressFn:
    """A ProgressFn mapping [0, 1] onto [start, end] of ``progress`` (messages optionally prefixed)."""
    report = progress or no_progress

    def inner(fraction: float, message: str) -> None:
        report(start + fraction * (end - start), prefix + message)

    return inner


class StageTimer:
    """Reports the start of each named stage and adds up the seconds spent in it."""

    def __init__(self, progress: ProgressFn | None = None):
        self.report = progress or no_progress
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, fraction: float, message: str) -> Iterator[None]:
        self.report(fraction, message)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
