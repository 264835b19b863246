"""Cohort change statistics from the change table: responsiveness per region, ordered values, groups.

For each interval (a baseline visit label to a follow-up visit label, e.g. V00 -> V24: visits are matched across
subjects by their label) and each measure (every region's mean thickness change, and the ordered values 1..7):

* all pairs: n, mean change, SD of change (ddof 1), the standardized response mean SRM = mean / SD, and its
  bootstrap 95 % interval (percentile method, ``BOOTSTRAP_RESAMPLES`` resamples of the pairs, seeded, so a run
  repeats exactly; resamples with no spread, SD below ``FLAT_SD_MM``, are left out);
* with a ``group`` column, per group: n, mean, SD and the mean's 95 % interval (Student t, n - 1 degrees of
  freedom), and the standardized difference from the first group in manifest order (Cohen's d: difference of
  means over the pooled SD).

Only pairs with status 'ok' count. Pure functions of the table; ``change_statistics`` returns one long table
(written as cohort_change_stats.csv).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import labels as L
from ..longitudinal.change import ORDERED_REGIONS

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
#: fewer pairs than this: no bootstrap interval (too few distinct resamples to mean anything).
MIN_BOOTSTRAP_PAIRS = 3
#: an SD below this (mm) is no spread: equal values give a rounding-error SD, not a ratio worth reporting.
FLAT_SD_MM = 1e-9
GROUP = "group"
COLUMNS = (
    "baseline_visit",
    "followup_visit",
    "measure",
    "group",
    "n",
    "mean_mm",
    "sd_mm",
    "ci_low_mm",
    "ci_high_mm",
    "srm",
    "srm_ci_low",
    "srm_ci_high",
    "reference_group",
    "standardized_difference",
)


def measures(table: pd.DataFrame) -> list[str]:
    """The columns summarised: each region's mean change, then the ordered values, where the table has them."""
    names = [f"{region}_change_mean_mm" for region in L.CARTILAGE_REGIONS]
    names += [f"ordered_value_{rank}_mm" for rank in range(1, len(ORDERED_REGIONS) + 1)]
    return [name for name in names if name in table]


def srm(values: np.ndarray) -> float:
    """Standardized response mean: mean change / SD of change (NaN below 2 values or with no spread)."""
    if len(values) < 2:
        return float("nan")
    sd = float(np.std(values, ddof=1))
    return float(np.mean(values)) / sd if sd > FLAT_SD_MM else float("nan")


def bootstrap_srm_interval(
    values: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """Percentile bootstrap interval (CONFIDENCE) of the SRM, resampling the pairs with replacement."""
    n = len(values)
    if n < MIN_BOOTSTRAP_PAIRS:
        return float("nan"), float("nan")
    draws = values[np.random.default_rng(seed).integers(0, n, size=(resamples, n))]
    sd = draws.std(axis=1, ddof=1)
    spread = sd > FLAT_SD_MM
    if not spread.any():
        return float("nan"), float("nan")
    ratios = draws.mean(axis=1)[spread] / sd[spread]
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    """The mean's CONFIDENCE interval, Student t with n - 1 degrees of freedom (NaN below 2 values)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * float(np.std(values, ddof=1)) / np.sqrt(n)
    mean = float(np.mean(values))
    return mean - half, mean + half


def standardized_difference(values: np.ndarray, reference: np.ndarray) -> float:
    """Cohen's d: (mean - reference mean) / pooled SD (NaN when either group has under 2 values or no spread)."""
    n, m = len(values), len(reference)
    if n < 2 or m < 2:
        return float("nan")
    pooled = np.sqrt(((n - 1) * np.var(values, ddof=1) + (m - 1) * np.var(reference, ddof=1)) / (n + m - 2))
    return float((np.mean(values) - np.mean(reference)) / pooled) if pooled > FLAT_SD_MM else float("nan")


def change_statistics(table: pd.DataFrame, *, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """The long table of statistics (COLUMNS): per interval and measure, all pairs, then one row per group."""
    rows: list[dict] = []
    ok = table[table["status"] == "ok"] if "status" in table else table
    grouped = GROUP in ok and ok[GROUP].fillna("").astype(str).str.len().gt(0).any()
    groups = list(dict.fromkeys(ok[GROUP].astype(str))) if grouped else []
    for (baseline, followup), pairs in ok.groupby(["baseline_visit", "followup_visit"], sort=False):
        for measure in measures(pairs):
            values = pd.to_numeric(pairs[measure], errors="coerce")
            kept = values.notna()
            data = values[kept].to_numpy(dtype=float)
            low, high = bootstrap_srm_interval(data, seed=seed)
            rows.append(
                _row(baseline, followup, measure, "", data) | {"srm": srm(data), "srm_ci_low": low, "srm_ci_high": high}
            )
            if not groups:
                continue
            labels = pairs.loc[kept, GROUP].astype(str).to_numpy()
            reference = data[labels == groups[0]]
            for group in groups:
                members = data[labels == group]
                ci_low, ci_high = mean_interval(members)
                rows.append(
                    _row(baseline, followup, measure, group, members)
                    | {"ci_low_mm": ci_low, "ci_high_mm": ci_high, "reference_group": groups[0]}
                    | {"standardized_difference": standardized_difference(members, reference)}
                )
    return pd.DataFrame.from_records(rows, columns=list(COLUMNS))


def _row(baseline: str, followup: str, measure: str, group: str, values: np.ndarray) -> dict:
    return {
        "baseline_visit": baseline,
        "followup_visit": followup,
        "measure": measure,
        "group": group,
        "n": len(values),
        "mean_mm": float(np.mean(values)) if len(values) else float("nan"),
        "sd_mm": float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"),
    }
