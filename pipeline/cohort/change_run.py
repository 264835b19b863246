"""The longitudinal part of a cohort run: which pairs run now, the pairs whose visit failed, and the change outputs
(cohort_change.csv/.parquet, cohort_change_stats.csv, the page's change sections, cohort.json's ``pairs``).

A pair counts as done when its record matches the visits' inputs now and both visits were done earlier (a visit
analysed again in this run is compared again); a failed pair's record stands unless ``retry_failed``. Pairs whose
visit failed are reported failed ('visit_failed') on every run, and never recorded (they run once the visit is fixed).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .change_report import change_sections
from .change_table import change_table
from .manifest import Manifest
from .outcome import VISIT_FAILED, CaseOutcome, failed
from .pairs import VisitPair, subjects_without_followup
from .statistics import change_statistics
from .store import CohortStore
from .table import status_counts, write_tables


@dataclass
class PairPlan:
    """The pairs of a run: outcomes known before running (``earlier``: re-read from records), the rest to run."""

    pairs: list[VisitPair]
    outcomes: dict[str, CaseOutcome] = field(default_factory=dict)
    earlier: set[str] = field(default_factory=set)
    to_run: list[VisitPair] = field(default_factory=list)


def plan_pairs_to_run(
    pairs: Sequence[VisitPair], store: CohortStore, visits_done_earlier: Collection[str], *, retry_failed: bool
) -> PairPlan:
    plan = PairPlan(list(pairs))
    for pair in pairs:
        inputs = pair.inputs()
        if set(pair.visit_ids) <= set(visits_done_earlier):
            record = store.done(pair.pair_id, inputs)
            if record is None and not retry_failed:
                record = store.failure(pair.pair_id, inputs)
            if record is not None:
                plan.outcomes[pair.pair_id] = record
                plan.earlier.add(pair.pair_id)
                continue
        plan.to_run.append(pair)
    return plan


def blocked(pair: VisitPair, visits: Mapping[str, CaseOutcome]) -> CaseOutcome:
    """The outcome of a pair that could not run: the visit(s) that failed, and why."""
    reasons = [
        f"the {role} visit {case.case_id} failed ({visits[case.case_id].error})"
        if case.case_id in visits
        else f"the {role} visit {case.case_id} did not run"
        for role, case in (("baseline", pair.baseline), ("follow-up", pair.followup))
        if case.case_id not in visits or not visits[case.case_id].succeeded
    ]
    return failed(pair.pair_id, "; ".join(reasons) or "not run", VISIT_FAILED, inputs=pair.inputs())


@dataclass(frozen=True)
class ChangeOutputs:
    table: pd.DataFrame
    statistics: pd.DataFrame
    record: dict
    sections: list[str]


def change_outputs(
    cohort: Manifest,
    plan: PairPlan,
    mode: str,
    *,
    ran_now: Sequence[str],
    case_seconds: float,
    out: Path,
) -> ChangeOutputs:
    """Write cohort_change.csv/.parquet and cohort_change_stats.csv; the record and page sections to add."""
    table = change_table(cohort, plan.pairs, plan.outcomes, plan.earlier)
    statistics = change_statistics(table)
    write_tables(table, out, stem="cohort_change")
    statistics.to_csv(out / "cohort_change_stats.csv", index=False)
    counts = {"pairs": len(plan.pairs), **status_counts(plan.outcomes, plan.earlier)}
    ran = [plan.outcomes[pair_id] for pair_id in ran_now]
    pair_seconds = sum(o.seconds for o in ran)
    record = {
        "mode": mode,
        "counts": counts,
        "subjects": len({pair.subject_id for pair in plan.pairs}),
        "subjects_without_followup": subjects_without_followup(cohort),
        "failed_pairs": [pair.pair_id for pair in plan.pairs if not plan.outcomes[pair.pair_id].succeeded],
        "timings": {
            "pairs_run": len(ran),
            "pair_seconds_sum": round(pair_seconds, 2),
            # of the worker seconds this run spent on visits and pairs, the share spent comparing
            "comparison_share": round(pair_seconds / (pair_seconds + case_seconds), 3)
            if pair_seconds + case_seconds > 0
            else None,
        },
    }
    return ChangeOutputs(table, statistics, record, change_sections(table, statistics, counts))
