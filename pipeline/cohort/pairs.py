"""Which visits of a longitudinal cohort are compared: subjects, their visits in order, and the pairs.

A longitudinal manifest names each row's ``subject_id`` (one knee: give each knee of a person its own id) and
``visit``, and optionally its ``date`` (YYYY-MM-DD). A subject's visits are ordered by date when all of them have
one, else in manifest order. Each follow-up is compared with the subject's first visit (``baseline``, the default)
or with the visit before it (``consecutive``). Problems are returned with their line numbers so that the manifest
reader lists them with every other problem at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from .manifest import CohortCase, Manifest, ManifestError, by_subject, visit_date

PAIR_MODES = ("baseline", "consecutive")


@dataclass(frozen=True)
class VisitPair:
    """One follow-up of a subject compared with an earlier visit.

    Attributes:
        pair_id: names the pair's folder under ``OUT/pairs/`` and its table row: ``<baseline id>__<follow-up id>``.
        subject_id: the subject.
        baseline, followup: the two visits' cases (their analysis folders are compared).
        interval_days: days from the baseline's date to the follow-up's, None without dates.
    """

    pair_id: str
    subject_id: str
    baseline: CohortCase
    followup: CohortCase
    interval_days: int | None = None
    compare_options: dict = field(default_factory=dict, compare=False)

    @property
    def case_id(self) -> str:
        """The id the store and the executors know the pair by (its folder and records)."""
        return self.pair_id

    @property
    def needs_segmentation(self) -> bool:
        return False

    @property
    def visit_ids(self) -> tuple[str, str]:
        return self.baseline.case_id, self.followup.case_id

    def inputs(self) -> dict[str, str]:
        """What the pair was made from: both visits' inputs and the comparison's options (a change re-runs it)."""
        return {
            "baseline": self.baseline.case_id,
            "followup": self.followup.case_id,
            "baseline_inputs": json.dumps(self.baseline.inputs(), sort_keys=True),
            "followup_inputs": json.dumps(self.followup.inputs(), sort_keys=True),
            "compare": json.dumps(self.compare_options, sort_keys=True),
        }


def plan_pairs(cohort: Manifest, mode: str = "baseline", compare_options: dict | None = None) -> list[VisitPair]:
    """The pairs to compare, subject by subject in manifest order, each subject's follow-ups in visit order."""
    if mode not in PAIR_MODES:
        raise ManifestError(f"--pairs {mode}: use 'baseline' (each follow-up vs the first visit) or 'consecutive'.")
    pairs = []
    for subject, visits in by_subject(cohort.cases).items():
        ordered = ordered_visits(visits)
        for number, followup in enumerate(ordered[1:], start=1):
            baseline = ordered[0] if mode == "baseline" else ordered[number - 1]
            pairs.append(
                VisitPair(
                    f"{baseline.case_id}__{followup.case_id}",
                    subject,
                    baseline,
                    followup,
                    _interval(baseline, followup),
                    dict(compare_options or {}),
                )
            )
    return pairs


def ordered_visits(visits: Sequence[CohortCase]) -> list[CohortCase]:
    """By date when every visit has one (manifest order among equal dates), else in manifest order."""
    dates = [visit_date(case) for case in visits]
    if all(day is not None for day in dates):
        return [case for _, _, case in sorted(zip(dates, range(len(visits)), visits, strict=True))]
    return list(visits)


def subjects_without_followup(cohort: Manifest) -> list[str]:
    return [subject for subject, visits in by_subject(cohort.cases).items() if len(visits) < 2]


def _interval(baseline: CohortCase, followup: CohortCase) -> int | None:
    start, end = visit_date(baseline), visit_date(followup)
    return None if start is None or end is None else (end - start).days
