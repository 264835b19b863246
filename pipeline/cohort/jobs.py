"""What the executors run: cases (analyse one visit) and, in a longitudinal cohort, pairs (compare two analysed
visits), and when a pair may start.

Both kinds go through the same executor, local or Ray, and the same store rules. A pair waits in ``PairGate``
until both its visits are done (now or in an earlier run); a pair whose visit failed never starts (the driver
reports it as failed, error kind 'visit_failed').
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from .manifest import CohortCase
from .outcome import CaseOutcome
from .pairs import VisitPair
from .runner import CaseOptions, analyse_case
from .store import CohortStore

if TYPE_CHECKING:
    from ..engine import Engine

Job = CohortCase | VisitPair


def run_job(engine: Engine | None, job: Job, store: CohortStore, options: CaseOptions) -> CaseOutcome:
    """Run one job on this worker: analyse a case (with ``engine``) or compare a pair (no engine needed)."""
    if isinstance(job, VisitPair):
        from .pairs_runner import compare_pair

        return compare_pair(job, store, store.pair_store())
    if engine is None:
        raise ValueError("a case needs an engine")  # executors build one whenever they have cases
    return analyse_case(engine, job, store, options)


class PairGate:
    """Pairs waiting for their visits. ``release`` returns the pairs whose two visits are now both done."""

    def __init__(self, pairs: Sequence[VisitPair] = (), known: Mapping[str, CaseOutcome] | None = None):
        self._waiting = list(pairs)
        self.ids = frozenset(pair.pair_id for pair in pairs)
        self._done: set[str] = set()
        self._failed: set[str] = set()
        for outcome in (known or {}).values():
            self._note(outcome)

    @property
    def pending(self) -> int:
        """Pairs that may still start (waiting, and neither visit failed)."""
        return sum(not (set(pair.visit_ids) & self._failed) for pair in self._waiting)

    def release(self, outcomes: Iterable[CaseOutcome] = ()) -> list[VisitPair]:
        """Note finished visits; the pairs that can start now (each returned once)."""
        for outcome in outcomes:
            self._note(outcome)
        ready = [pair for pair in self._waiting if set(pair.visit_ids) <= self._done]
        self._waiting = [pair for pair in self._waiting if pair not in ready]
        return ready

    def _note(self, outcome: CaseOutcome) -> None:
        (self._done if outcome.succeeded else self._failed).add(outcome.case_id)
