"""Which visits a longitudinal cohort compares: order by date or by manifest, baseline or consecutive pairs."""

from __future__ import annotations

import pytest

from pipeline.cohort import ManifestError, read_manifest
from pipeline.cohort.jobs import PairGate
from pipeline.cohort.outcome import FAILED, OK, CaseOutcome
from pipeline.cohort.pairs import plan_pairs


def manifest(tmp_path, text: str):
    path = tmp_path / "MANIFEST.csv"
    path.write_text(text)
    return read_manifest(path, longitudinal=True)


def described(pairs) -> list[tuple[str, str, str, int | None]]:
    return [(p.subject_id, p.baseline.cells["visit"], p.followup.cells["visit"], p.interval_days) for p in pairs]


def test_baseline_is_the_first_visit_by_date_and_ids_come_from_subject_and_visit(tmp_path):
    cohort = manifest(
        tmp_path,
        "Subject_ID,Visit,Date,labels\n"  # header names in any case
        "9001 R,V12,2021-03-02,a.nii.gz\n"
        "9001 R,V00,2020-03-01,b.nii.gz\n"
        "9001 R,V24,2022-02-27,c.nii.gz\n"
        "9002,V00,2020-05-05,d.nii.gz\n",  # one visit only: no pair
    )
    assert [case.case_id for case in cohort.cases] == ["9001_R_V12", "9001_R_V00", "9001_R_V24", "9002_V00"]
    assert cohort.columns[0] == "case_id"
    assert described(plan_pairs(cohort)) == [("9001 R", "V00", "V12", 366), ("9001 R", "V00", "V24", 728)]
    assert described(plan_pairs(cohort, "consecutive")) == [
        ("9001 R", "V00", "V12", 366),
        ("9001 R", "V12", "V24", 362),
    ]
    assert plan_pairs(cohort)[0].pair_id == "9001_R_V00__9001_R_V12"


def test_without_dates_manifest_order_and_no_interval(tmp_path):
    cohort = manifest(tmp_path, "case_id,subject_id,visit,labels\nb,S,second,b.nii.gz\na,S,first,a.nii.gz\n")
    assert described(plan_pairs(cohort)) == [("S", "second", "first", None)]


def test_equal_dates_keep_manifest_order(tmp_path):
    cohort = manifest(
        tmp_path, "subject_id,visit,date,labels\nS,test,2020-01-01,a.nii.gz\nS,retest,2020-01-01,b.nii.gz\n"
    )
    assert described(plan_pairs(cohort)) == [("S", "test", "retest", 0)]


def test_unknown_pair_mode_refused(tmp_path):
    cohort = manifest(tmp_path, "subject_id,visit,labels\nS,1,a.nii.gz\nS,2,b.nii.gz\n")
    with pytest.raises(ManifestError, match="--pairs every: use 'baseline'"):
        plan_pairs(cohort, "every")


def test_gate_releases_a_pair_once_both_visits_are_done_and_never_after_a_failure(tmp_path):
    cohort = manifest(
        tmp_path, "subject_id,visit,labels\nS,1,a.nii.gz\nS,2,b.nii.gz\nS,3,c.nii.gz\nT,1,d.nii.gz\nT,2,e.nii.gz\n"
    )
    pairs = plan_pairs(cohort)  # S_1__S_2, S_1__S_3, T_1__T_2
    gate = PairGate(pairs, {"S_1": CaseOutcome("S_1", OK)})  # done in an earlier run
    assert gate.release() == [] and gate.pending == 3
    assert [p.pair_id for p in gate.release([CaseOutcome("S_3", OK)])] == ["S_1__S_3"]
    assert gate.release([CaseOutcome("T_1", FAILED)]) == [] and gate.pending == 1  # T's pair can never run
    assert [p.pair_id for p in gate.release([CaseOutcome("S_2", OK), CaseOutcome("T_2", OK)])] == ["S_1__S_2"]
    assert gate.release() == [] and gate.pending == 0


def test_a_pair_that_meets_a_full_disk_is_said_so_and_a_bug_stays_a_crash_with_its_traceback(tmp_path, monkeypatch):
    """Cases and pairs share one failure classification (cohort.runner.failure_outcome): a comparison whose write
    runs out of room is 'The disk is full', not a crash."""
    import errno
    import json

    from pipeline.cohort import pairs_runner
    from pipeline.cohort.outcome import ANALYSIS, CRASH
    from pipeline.cohort.store import CohortStore

    (pair,) = plan_pairs(manifest(tmp_path, "subject_id,visit,labels\nS,1,a.nii.gz\nS,2,b.nii.gz\n"))
    visits = CohortStore(tmp_path / "cohort")
    pairs = visits.pair_store()

    def compare_on_a_full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "pairs/.partial/x/change.csv")

    monkeypatch.setattr(pairs_runner, "compare", compare_on_a_full_disk)
    outcome = pairs_runner.compare_pair(pair, visits, pairs)
    assert (outcome.status, outcome.error_kind) == (FAILED, ANALYSIS)
    assert outcome.error.startswith("The disk is full: the pair's change could not be written to cohort")

    def compare_with_a_bug(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(pairs_runner, "compare", compare_with_a_bug)
    outcome = pairs_runner.compare_pair(pair, visits, pairs)
    assert (outcome.status, outcome.error_kind) == (FAILED, CRASH)
    assert outcome.error == f"ZeroDivisionError: division by zero (traceback in failed_pairs/{pair.pair_id}.json)"
    record = json.loads((tmp_path / "cohort" / "failed_pairs" / f"{pair.pair_id}.json").read_text())
    assert "compare_with_a_bug" in record["traceback"]
