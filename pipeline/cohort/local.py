"""``--engine local``: the per-case function in this process, in manifest order, with one engine for all cases.

In a longitudinal cohort each pair runs as soon as its two visits are done, before the next case.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence

from ..engine_spec import EngineSpec
from .jobs import Job, PairGate, run_job
from .manifest import CohortCase
from .outcome import CaseOutcome
from .runner import CaseOptions
from .store import CohortStore


def run_local(
    cases: Sequence[CohortCase],
    *,
    spec: EngineSpec,
    store: CohortStore,
    options: CaseOptions,
    pairs: PairGate | None = None,
    on_start: Callable[[], None] | None = None,
) -> Iterator[CaseOutcome]:
    """Yield each case's (and pair's) outcome as it completes. The model is loaded once, and only if a case needs
    segmenting; ``on_start`` is called once, just before the first job runs."""
    gate = pairs or PairGate()
    queue: deque[Job] = deque([*gate.release(), *cases])
    if not queue:
        return
    from ..engine import Engine  # the engine's stages are imported only when a case runs

    segment = any(case.needs_segmentation for case in cases)
    engine = Engine.from_spec(spec, segment=segment) if cases else None
    if on_start is not None:
        on_start()
    while queue:
        job = queue.popleft()
        outcome = run_job(engine, job, store, options)
        if isinstance(job, CohortCase):
            queue.extendleft(reversed(gate.release([outcome])))
        yield outcome


class LocalExecutor:
    """Runs the cases in this process, in manifest order (``--engine local``)."""

    def __init__(self, spec: EngineSpec, store: CohortStore, options: CaseOptions):
        self.spec, self.store, self.options = spec, store, options
        self.info = {"name": "local", "workers": 1}

    def run(
        self,
        cases: Sequence[CohortCase],
        *,
        pairs: PairGate | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> Iterator[CaseOutcome]:
        return run_local(cases, spec=self.spec, store=self.store, options=self.options, pairs=pairs, on_start=on_start)
