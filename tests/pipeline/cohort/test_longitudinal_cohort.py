"""`python -m pipeline batch MANIFEST --longitudinal --engine ray`: 4 synthetic subjects x 3 visits of known change.

One run through the CLI on a 2-CPU Ray cluster, with the comparisons' kill-once hook armed (the first worker to
finish writing a pair dies before committing it, as a lost machine would), then the same cohort again through
``run_cohort(..., longitudinal=True)``: everything re-read, nothing run. The statistics are checked against a direct
numpy/scipy computation from cohort_change.csv; the recovered changes against the truth synth wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from pipeline import labels as L
from pipeline.cli import main
from pipeline.cohort import run_cohort
from tests.fixtures.cohort import SUBJECTS, VISITS, truth, write_cohort

TOLERANCE_MM = 0.05
REGION_COLUMNS = [f"{region}_change_mean_mm" for region in L.CARTILAGE_REGIONS]


@dataclass(frozen=True)
class Runs:
    data: Path
    out: Path
    marker: Path
    exit_code: int
    visits: pd.DataFrame  # cohort.csv after the first run
    changes: pd.DataFrame  # cohort_change.csv after the first run
    statistics: pd.DataFrame
    record: dict
    page: str
    second: tuple  # run_cohort's CohortTables of the second run


@pytest.fixture(scope="module")
def runs(ray_cluster, tmp_path_factory) -> Runs:
    folder = tmp_path_factory.mktemp("longitudinal")
    manifest = write_cohort(folder / "data")
    out = folder / "OUT"
    ray_cluster.parent.mkdir()  # arms the hook: the first pair to finish writing loses its worker
    code = main(["batch", str(manifest), "--out", str(out), "--longitudinal", "--engine", "ray", "--workers", "2"])
    first = Runs(
        folder / "data",
        out,
        ray_cluster,
        code,
        pd.read_csv(out / "cohort.csv"),
        pd.read_csv(out / "cohort_change.csv"),
        _statistics(out / "cohort_change_stats.csv"),
        json.loads((out / "cohort.json").read_text()),
        (out / "cohort_report.html").read_text(),
        (),
    )
    second = run_cohort(manifest, out, engine="ray", longitudinal=True, progress=False)
    return Runs(**{**first.__dict__, "second": second})


def _statistics(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    table["group"] = table["group"].fillna("").astype(str)  # '' = all pairs
    return table


def test_every_pair_within_005_mm_of_the_truth(runs):
    changes = runs.changes
    assert runs.exit_code == 0
    expected = [(s, "V00", v) for s in SUBJECTS for v in ("V12", "V24")]  # S2's baseline found by date
    assert list(zip(changes["subject_id"], changes["baseline_visit"], changes["followup_visit"], strict=True)) == (
        expected
    )
    assert (changes["status"] == "ok").all() and changes["pair_id"].is_unique
    assert list(changes["interval_days"]) == [VISITS["V12"][0], VISITS["V24"][0]] * 4
    assert list(changes["group"]) == [SUBJECTS[s][2] for s, _, _ in expected]
    worst = 0.0
    for row in changes.itertuples():
        assert row.laterality == SUBJECTS[row.subject_id][0]
        true = truth(runs.data, row.subject_id, row.followup_visit)
        for region in L.CARTILAGE_REGIONS:
            error = getattr(row, f"{region}_change_mean_mm") - true[region]
            worst = max(worst, abs(error))
            assert abs(error) <= TOLERANCE_MM, (row.pair_id, region, error)
    print(f"worst regional error over 8 pairs x 9 regions: {worst:.3f} mm")


def test_each_visit_analysed_once_and_pairs_read_from_its_folder(runs):
    assert len(runs.visits) == 12 and (runs.visits["status"] == "ok").all()
    assert sorted(p.name for p in (runs.out / "cases").iterdir()) == sorted(runs.visits["case_id"])
    for pair_id in runs.changes["pair_id"]:
        folder = runs.out / "pairs" / pair_id
        change = json.loads((folder / "change.json").read_text())
        assert change["baseline"]["source"] == change["followup"]["source"] == "analysis folder"
        assert not (folder / "baseline").exists() and not (folder / "followup").exists()  # nothing analysed again
    for bone in L.BONES:  # registration QC: both ways agree; nothing flagged on clean synthetic pairs
        assert (runs.changes[f"{bone}_inverse_consistency_mm"] < 0.25).all()
        assert (runs.changes[f"{bone}_overlap_fraction"] > 0.6).all()
    assert not runs.changes["qc_flagged"].any()


def test_killed_worker_mid_pair_then_rerun_loses_and_duplicates_nothing(runs):
    assert runs.marker.is_file(), "the test hook never killed a worker"
    done = {p.parent.name: json.loads(p.read_text()) for p in (runs.out / "pairs").glob("*/done.json")}
    assert sorted(done) == sorted(runs.changes["pair_id"])
    assert sorted(d["interrupted_attempts"] for d in done.values()) == [0] * 7 + [1]  # the killed pair, re-run once
    assert not (runs.out / "pairs" / ".partial").exists() and not (runs.out / "cases" / ".partial").exists()
    assert runs.record["pairs"]["counts"] == {"pairs": 8, "ok": 8, "failed": 0, "this_run": 8, "earlier": 0}
    visits, changes = runs.second
    assert (visits["run"] == "earlier").all() and (changes["run"] == "earlier").all()
    assert (visits["status"] == "ok").all() and (changes["status"] == "ok").all()
    columns = ["pair_id", *REGION_COLUMNS, "femur_rotation_deg", "ordered_value_1_mm"]
    pd.testing.assert_frame_equal(
        changes[columns].reset_index(drop=True), runs.changes[columns], check_dtype=False, check_exact=True
    )
    record = changes.attrs["cohort"]
    assert record["pairs"]["counts"] == {"pairs": 8, "ok": 8, "failed": 0, "this_run": 0, "earlier": 8}
    assert record["counts"]["this_run"] == 0 and record["pairs"]["timings"]["pairs_run"] == 0


def test_srm_and_group_statistics_equal_numpy_from_the_change_table(runs):
    table, statistics = runs.changes, runs.statistics
    for (baseline, followup), pairs in table.groupby(["baseline_visit", "followup_visit"]):
        mine = statistics[(statistics["baseline_visit"] == baseline) & (statistics["followup_visit"] == followup)]
        for column in REGION_COLUMNS:
            values = pairs[column].to_numpy(float)
            row = mine[(mine["measure"] == column) & (mine["group"] == "")].iloc[0]
            sd = np.std(values, ddof=1)
            assert row["n"] == 4 and row["mean_mm"] == pytest.approx(values.mean(), rel=1e-12)
            assert row["srm"] == pytest.approx(values.mean() / sd, rel=1e-9)
            # The documented recipe, recomputed: 2000 resamples of the pairs, seed 0, those with no spread (SD at
            # most 1e-9 mm: all four draws the same pair) left out, percentile interval.
            draws = values[np.random.default_rng(0).integers(0, 4, size=(2000, 4))]
            spread = draws.std(axis=1, ddof=1)
            ratios = draws.mean(axis=1)[spread > 1e-9] / spread[spread > 1e-9]
            low, high = np.percentile(ratios, [2.5, 97.5])
            assert (row["srm_ci_low"], row["srm_ci_high"]) == pytest.approx((low, high), rel=1e-9)
            groups = {g: pairs.loc[pairs["group"] == g, column].to_numpy(float) for g in ("A", "B")}
            pooled = np.sqrt((np.var(groups["A"], ddof=1) + np.var(groups["B"], ddof=1)) / 2)  # 2 pairs each
            for group, members in groups.items():
                g = mine[(mine["measure"] == column) & (mine["group"] == group)].iloc[0]
                half = scipy_stats.t.ppf(0.975, 1) * np.std(members, ddof=1) / np.sqrt(2)
                assert g["mean_mm"] == pytest.approx(members.mean(), rel=1e-12)
                assert (g["ci_low_mm"], g["ci_high_mm"]) == pytest.approx(
                    (members.mean() - half, members.mean() + half), rel=1e-9
                )
                d = (members.mean() - groups["A"].mean()) / pooled
                assert g["standardized_difference"] == pytest.approx(d, rel=1e-9, abs=1e-12)
    # Group A loses more medial tibial cartilage than group B by construction.
    medial = statistics[(statistics["measure"] == "medial_tibial_change_mean_mm") & (statistics["group"] == "B")]
    assert (medial["standardized_difference"] > 2).all()


def test_cohort_page_shows_change_statistics_and_links_every_pair(runs):
    page = runs.page
    for interval in ("V00 → V12", "V00 → V24"):
        for section in ("Standardized response mean", "Ordered values", "Groups"):
            assert f"<h3>{section}, {interval}</h3>" in page, (section, interval)
        assert f"medial tibial mean change (mm), {interval}" in page
    for pair_id in runs.changes["pair_id"]:
        assert f"href='pairs/{pair_id}/'" in page
    assert "8 pairs: 8 ok, 0 failed" in page and "12 cases: 12 ok, 0 failed" in page
    assert runs.record["pairs"]["timings"]["comparison_share"] > 0
