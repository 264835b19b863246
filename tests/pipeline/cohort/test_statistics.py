"""Cohort change statistics against independent references: the SRM's bootstrap interval against its large-sample
standard error, the mean's interval against scipy's, Cohen's d against its definition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.cohort.statistics import (
    bootstrap_srm_interval,
    change_statistics,
    mean_interval,
    srm,
    standardized_difference,
)


def test_bootstrap_interval_of_the_srm_matches_its_normal_theory_standard_error():
    """For normal data SE(SRM) ~ sqrt((1 + SRM^2 / 2) / n) (the d-statistic's delta-method variance): an
    independent reference for the percentile bootstrap at n = 400."""
    values = np.random.default_rng(7).normal(-0.3, 0.5, 400)
    estimate = srm(values)
    low, high = bootstrap_srm_interval(values)
    se = np.sqrt((1 + estimate**2 / 2) / len(values))
    assert low < estimate < high
    assert (high - low) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_srm_interval(values) == (low, high)  # seeded: repeats exactly
    assert bootstrap_srm_interval(values, seed=1) != (low, high)


def test_small_or_flat_samples_give_no_interval():
    assert np.isnan(srm(np.array([0.1])))
    assert np.isnan(srm(np.array([0.2, 0.2, 0.2])))  # no spread: no SRM
    assert all(np.isnan(bootstrap_srm_interval(np.array([0.1, 0.3]))))


def test_mean_interval_and_standardized_difference():
    a, b = np.array([-0.3, -0.25, -0.4, -0.35]), np.array([-0.1, -0.05, -0.12])
    expected = stats.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=stats.sem(a))
    assert mean_interval(a) == pytest.approx(expected, rel=1e-12)
    pooled = np.sqrt((3 * a.var(ddof=1) + 2 * b.var(ddof=1)) / 5)
    assert standardized_difference(b, a) == pytest.approx((b.mean() - a.mean()) / pooled, rel=1e-12)


def test_statistics_table_per_interval_measure_and_group_only_ok_pairs():
    table = pd.DataFrame(
        {
            "baseline_visit": ["V0"] * 5,
            "followup_visit": ["V1"] * 5,
            "status": ["ok", "ok", "ok", "ok", "failed"],
            "group": ["A", "A", "B", "B", "A"],
            "medial_tibial_change_mean_mm": [-0.3, -0.2, -0.1, 0.0, -9.0],
            "ordered_value_1_mm": [-0.3, -0.25, -0.12, -0.05, np.nan],
        }
    )
    out = change_statistics(table)
    assert list(out["measure"].unique()) == ["medial_tibial_change_mean_mm", "ordered_value_1_mm"]
    overall = out[(out["measure"] == "medial_tibial_change_mean_mm") & (out["group"] == "")].iloc[0]
    assert overall["n"] == 4 and overall["mean_mm"] == pytest.approx(-0.15)  # the failed pair left out
    assert overall["srm"] == pytest.approx(-0.15 / np.std([-0.3, -0.2, -0.1, 0.0], ddof=1))
    groups = out[(out["measure"] == "medial_tibial_change_mean_mm") & (out["group"] != "")]
    assert list(groups["group"]) == ["A", "B"] and list(groups["reference_group"]) == ["A", "A"]
    # group means -0.25 and -0.05, both SDs sqrt(0.005): d = 0.2 / sqrt(0.005)
    assert groups["standardized_difference"].tolist() == pytest.approx([0.0, 0.2 / np.sqrt(0.005)])
