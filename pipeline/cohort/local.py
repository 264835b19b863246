"""``--engine local``: the per-case function in this process, in manifest order, with one engine for all cases."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..engine_spec import EngineSpec
from .manifest import CohortCase
from .outcome import CaseOutcome
from .runner import CaseOptions, analyse_case
from .store import CohortStore


def run_local(
    cases: Sequence[CohortCase], *, spec: EngineSpec, store: CohortStore, options: CaseOptions
) -> Iterator[CaseOutcome]:
    """Yield each case's outcome as it completes. The model is loaded once, and only if a case needs segmenting."""
    from ..engine import Engine  # the engine's stages are imported only when a case runs

    if not cases:
        return
    engine = Engine.from_spec(spec, segment=any(case.needs_segmentation for case in cases))
    for case in cases:
        yield analyse_case(engine, case, store, options)


class LocalExecutor:
    """Runs the cases in this process, in manifest order (``--engine local``)."""

    def __init__(self, spec: EngineSpec, store: CohortStore, options: CaseOptions):
        self.spec, self.store, self.options = spec, store, options
        self.info = {"name": "local", "workers": 1}

    def run(self, cases: list[CohortCase]) -> Iterator[CaseOutcome]:
        return run_local(cases, spec=self.spec, store=self.store, options=self.options)
