"""The cohort page's change sections (a longitudinal cohort): pairs to look at first, failed pairs, the
standardized response mean per region, ordered values, groups, and per-region change distributions.

A pair is listed first when it has a QC warning (an uncertain registration, or either visit's own QC warnings,
which the comparison carries) or a regional change more than 3 scaled MAD from its interval's median (the same
rule as the visits' page). Static HTML, no script; every pair links to its folder under ``pairs/``.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from .. import labels as L
from .outcome import FAILED, OK
from .report import MAD_LIMIT, spread, strip_plot
from .statistics import BOOTSTRAP_RESAMPLES, CONFIDENCE

#: pairs listed in the page's table (flagged ones first); the rest are in cohort_change.csv.
MAX_LISTED_PAIRS = 500
#: regions whose mean change the pair table shows.
SHOWN_REGIONS = ("femoral", "medial_tibial", "lateral_tibial", "patellar")


def change_sections(table: pd.DataFrame, statistics: pd.DataFrame, counts: dict) -> list[str]:
    """The HTML sections, in page order."""
    intervals = list(dict.fromkeys(zip(table["baseline_visit"], table["followup_visit"], strict=True)))
    failed = table[table["status"] == FAILED]
    reasons = flag_reasons(table)
    parts = [
        "<h2>Change between visits</h2>",
        f"<p>{counts['pairs']} pairs: {counts['ok']} ok, {counts['failed']} failed ({counts['this_run']} made by "
        f"this run, {counts['earlier']} by earlier runs). Change = follow-up minus baseline, in mm, on the "
        "baseline's bone vertices; each follow-up registered onto its baseline both ways (the midpoint). "
        f"Table: <a href='cohort_change.csv'>cohort_change.csv</a>; statistics: "
        "<a href='cohort_change_stats.csv'>cohort_change_stats.csv</a>.</p>",
        "<h3>Pairs (flagged first)</h3>",
        _pair_table(table, reasons) if len(table) else "<p>No pairs: no subject has two visits.</p>",
    ]
    if len(failed):
        parts += ["<h3>Failed pairs</h3>", _failed_pairs(failed)]
    for baseline, followup in intervals:
        stats = statistics[(statistics["baseline_visit"] == baseline) & (statistics["followup_visit"] == followup)]
        title = f"{_e(baseline)} → {_e(followup)}"
        parts += [
            f"<h3>Standardized response mean, {title}</h3>",
            f"<p>SRM = mean change / SD of change over the pairs; {CONFIDENCE:.0%} interval: percentile bootstrap "
            f"({BOOTSTRAP_RESAMPLES} resamples of the pairs, seeded).</p>",
            _srm_table(stats[(stats["group"] == "") & stats["measure"].str.endswith("_change_mean_mm")]),
            f"<h3>Ordered values, {title}</h3>",
            "<p>Each pair's femorotibial subregion changes sorted from the largest loss (rank 1) to the largest gain, "
            "summarised rank by rank (Buck et al. 2009).</p>",
            _srm_table(stats[(stats["group"] == "") & stats["measure"].str.startswith("ordered_value_")]),
        ]
        grouped = stats[stats["group"] != ""]
        if len(grouped):
            parts += [f"<h3>Groups, {title}</h3>", _group_table(grouped)]
    parts.append(
        f"<h3>Change distributions</h3><p>One dot per pair; line: median; band: ±{MAD_LIMIT:g} scaled MAD.</p>"
    )
    for baseline, followup in intervals:
        pairs = _interval(table, baseline, followup)
        for column in _region_columns(pairs):
            region = column.removesuffix("_change_mean_mm").replace("_", " ")
            parts.append(
                strip_plot(
                    pairs,
                    spread(pairs, column, ids="pair_id"),
                    ids="pair_id",
                    folder="pairs",
                    title=f"{region} mean change (mm), {baseline} → {followup}",
                )
            )
    return parts


def flag_reasons(table: pd.DataFrame) -> dict[str, list[str]]:
    """pair_id -> why it deserves a look: QC warnings, then regional changes beyond 3 MAD of its interval."""
    reasons: dict[str, list[str]] = {}
    for row in table.itertuples():
        if isinstance(row.qc_warnings, str) and row.qc_warnings:
            reasons.setdefault(str(row.pair_id), []).extend(f"QC: {w}" for w in row.qc_warnings.split(" | "))
    for (baseline, followup), pairs in table.groupby(["baseline_visit", "followup_visit"], sort=False):
        for column in _region_columns(pairs):
            s = spread(pairs, column, ids="pair_id")
            for pair_id, value in s.outliers.items():
                region = column.removesuffix("_change_mean_mm").replace("_", " ")
                reasons.setdefault(pair_id, []).append(
                    f"{region} change {value:+.2f} mm: {s.deviation(value):+.1f} MAD from the {baseline} → "
                    f"{followup} median"
                )
    return reasons


def _pair_table(table: pd.DataFrame, reasons: dict[str, list[str]]) -> str:
    ok = table["status"] == OK
    order = sorted(range(len(table)), key=lambda i: (str(table["pair_id"].iloc[i]) not in reasons, not ok.iloc[i]))
    shown = order[:MAX_LISTED_PAIRS]
    columns = [f"{region}_change_mean_mm" for region in SHOWN_REGIONS if f"{region}_change_mean_mm" in table]
    head = "".join(f"<th>{_e(c.removesuffix('_change_mean_mm').replace('_', ' '))}</th>" for c in columns)
    rows = []
    for i in shown:
        row = table.iloc[i]
        pair_id = str(row["pair_id"])
        days = row.get("interval_days")
        interval = "" if days is None or pd.isna(days) else f" ({int(days)} d)"
        cells = "".join(f"<td>{_number(row[c])}</td>" for c in columns)
        why = "<br>".join(_e(r) for r in reasons.get(pair_id, [])) or ("" if row["status"] == OK else "failed")
        rows.append(
            f"<tr><td><a href='pairs/{_e(pair_id)}/'>{_e(row['subject_id'])}</a></td>"
            f"<td>{_e(row['baseline_visit'])} → {_e(row['followup_visit'])}{interval}</td>{cells}<td>{why}</td></tr>"
        )
    more = f"<p>… and {len(table) - len(shown)} more pairs in cohort_change.csv.</p>" if len(table) > len(shown) else ""
    return f"<table><tr><th>subject</th><th>visits</th>{head}<th>why to look</th></tr>{''.join(rows)}</table>{more}"


def _failed_pairs(failed: pd.DataFrame) -> str:
    rows = "".join(
        f"<tr><td>{_e(r.pair_id)}</td><td>{_e(r.error_kind)}</td><td>{_e(r.error)}</td></tr>"
        for r in failed.itertuples()
    )
    return f"<table><tr><th>pair</th><th>kind</th><th>error</th></tr>{rows}</table>"


def _srm_table(stats: pd.DataFrame) -> str:
    rows = "".join(
        f"<tr><td>{_e(_measure(r.measure))}</td><td>{r.n}</td><td>{_number(r.mean_mm)}</td>"
        f"<td>{_number(r.sd_mm, signed=False)}</td><td>{_number(r.srm, 2)}</td>"
        f"<td>{_number(r.srm_ci_low, 2)} to {_number(r.srm_ci_high, 2)}</td></tr>"
        for r in stats.itertuples()
    )
    return (
        "<table><tr><th>measure</th><th>n</th><th>mean change (mm)</th><th>SD (mm)</th><th>SRM</th>"
        f"<th>SRM {CONFIDENCE:.0%} interval</th></tr>{rows}</table>"
    )


def _group_table(stats: pd.DataFrame) -> str:
    reference = str(stats["reference_group"].iloc[0])
    rows = "".join(
        f"<tr><td>{_e(_measure(r.measure))}</td><td>{_e(r.group)}</td><td>{r.n}</td><td>{_number(r.mean_mm)}</td>"
        f"<td>{_number(r.ci_low_mm)} to {_number(r.ci_high_mm)}</td>"
        f"<td>{'' if r.group == reference else _number(r.standardized_difference, 2)}</td></tr>"
        for r in stats.itertuples()
        if r.measure.endswith("_change_mean_mm")
    )
    return (
        f"<p>Mean change per group with its {CONFIDENCE:.0%} interval (Student t); standardized difference: "
        f"Cohen's d against group {_e(reference)} (difference of means / pooled SD).</p>"
        "<table><tr><th>region</th><th>group</th><th>n</th><th>mean change (mm)</th>"
        f"<th>{CONFIDENCE:.0%} interval (mm)</th><th>standardized difference</th></tr>{rows}</table>"
    )


def _interval(table: pd.DataFrame, baseline: str, followup: str) -> pd.DataFrame:
    return table[(table["baseline_visit"] == baseline) & (table["followup_visit"] == followup)]


def _region_columns(table: pd.DataFrame) -> list[str]:
    columns = [f"{region}_change_mean_mm" for region in L.CARTILAGE_REGIONS]
    return [c for c in columns if c in table and pd.to_numeric(table[c], errors="coerce").notna().any()]


def _measure(name: str) -> str:
    if name.startswith("ordered_value_"):
        return f"ordered value {name.removeprefix('ordered_value_').removesuffix('_mm')}"
    return name.removesuffix("_change_mean_mm").replace("_", " ")


def _number(value: object, digits: int = 3, *, signed: bool = True) -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if not np.isfinite(number):
        return "–"
    return f"{number:+.{digits}f}" if signed else f"{number:.{digits}f}"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
