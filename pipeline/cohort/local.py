"""``--engine local``: the per-case function in this process, in manifest order, with one engine for all cases."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .manifest import CohortCase
from .outcome import CaseOutcome
from .runner import CaseOptions, EngineSpec, analyse_case
from .store import CohortStore


def run_local(
    cases: Sequence[CohortCase], *, spec: EngineSpec, store: CohortStore, options: CaseOptions
) -> Iterator[CaseOutcome]:
    """Yield each case's outcome as it completes. The model is loaded once, and only if a case needs segmenting."""
    if not cases:
        return
    engine = spec.build(segment=any(case.needs_segmentation for case in cases))
    for case in cases:
        yield analyse_case(engine, case, store, options)
