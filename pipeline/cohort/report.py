"""cohort_report.html: a static QC page (no server, no script): per-region distributions and the cases to look at.

First the segmentations to look at: every case whose segmentation QC verdict is "failed" or "review", lowest score
first (failed before review), linked to its folder. A case is also flagged when it has QC warnings, or when one of
its per-region values lies more than ``MAD_LIMIT`` scaled median absolute deviations (1.4826 x MAD, the robust
stand-in for a standard deviation) from the cohort's median. Each dot and each flagged case links to the case's
folder.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import labels as L
from .outcome import FAILED, CaseOutcome

MAD_LIMIT = 3.0
MAD_SCALE = 1.4826
#: fewer measured cases than this and no value is called an outlier.
MIN_CASES = 5
WIDTH, HEIGHT, PAD = 640, 54, 30
#: above this many cases a distribution is drawn as a histogram, with only the outliers as dots.
MAX_DOTS, HISTOGRAM_BINS = 400, 60


@dataclass(frozen=True)
class Spread:
    """A metric's robust centre and spread over the cohort, and the cases beyond the limit."""

    column: str
    median: float
    mad: float  # scaled
    outliers: dict[str, float]

    def deviation(self, value: float) -> float:
        return (value - self.median) / self.mad if self.mad > 0 else 0.0


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Per-region thickness means, and T2 means when any case has them, in report order."""
    candidates = [f"{region}_thickness_mean_mm" for region in L.CARTILAGE_REGIONS]
    candidates += [f"{region}_t2_mean_ms" for region in L.CARTILAGE_REGIONS]
    return [c for c in candidates if c in table and pd.to_numeric(table[c], errors="coerce").notna().any()]


def spread(table: pd.DataFrame, column: str, *, ids: str = "case_id") -> Spread:
    """The column's median and scaled MAD over the rows that did not fail, and its outliers (by ``ids``)."""
    values = pd.to_numeric(table[column], errors="coerce")
    measured = values.notna() & (table["status"] != FAILED)
    data = values[measured].to_numpy(dtype=float, na_value=np.nan)
    if len(data) == 0:
        return Spread(column, float("nan"), 0.0, {})
    median = float(np.median(data))
    mad = MAD_SCALE * float(np.median(np.abs(data - median)))
    outliers: dict[str, float] = {}
    if len(data) >= MIN_CASES and mad > 0:
        for case_id, value in zip(table[ids][measured], data, strict=True):
            if abs(value - median) > MAD_LIMIT * mad:
                outliers[str(case_id)] = float(value)
    return Spread(column, median, mad, outliers)


#: results.csv columns of the segmentation QC verdict (pipeline.report.table).
SCORE, VERDICT, REASONS = "qc_segmentation_score", "qc_segmentation_verdict", "qc_segmentation_reasons"
VERDICT_ORDER = {"failed": 0, "review": 1, "ok": 2}


def segmentations_to_review(table: pd.DataFrame) -> pd.DataFrame:
    """Cases whose segmentation QC verdict is "failed" or "review": failed first, then by score, lowest first."""
    if VERDICT not in table or SCORE not in table:
        return table.iloc[0:0]
    marked = table[table[VERDICT].isin(["failed", "review"])].copy()
    marked["_order"] = marked[VERDICT].map(VERDICT_ORDER)
    marked["_score"] = pd.to_numeric(marked[SCORE], errors="coerce")
    return marked.sort_values(["_order", "_score", "case_id"], kind="stable").drop(columns=["_order", "_score"])


def flagged_cases(table: pd.DataFrame, outcomes: Mapping[str, CaseOutcome]) -> dict[str, list[str]]:
    """case_id -> why it deserves a look (QC warnings, outlying values), in manifest order."""
    reasons: dict[str, list[str]] = {}
    spreads = [spread(table, column) for column in metric_columns(table)]
    verdicts = segmentations_to_review(table).set_index("case_id")
    for case_id in table["case_id"]:
        found = [f"QC: {warning}" for warning in outcomes[str(case_id)].warnings]
        if case_id in verdicts.index:
            row = verdicts.loc[case_id]
            found.insert(0, f"Segmentation {row[VERDICT]} (score {float(row[SCORE]):.2f}): {_reasons(row[REASONS])}")
        for s in spreads:
            if str(case_id) in s.outliers:
                value = s.outliers[str(case_id)]
                found.append(f"{_label(s.column)} {value:.2f}: {s.deviation(value):+.1f} MAD from the median")
        if found:
            reasons[str(case_id)] = found
    return reasons


def write_report(
    table: pd.DataFrame,
    outcomes: Mapping[str, CaseOutcome],
    record: dict,
    out: Path,
    *,
    sections: Sequence[str] = (),
) -> Path:
    """cohort_report.html; ``sections``: more HTML (a longitudinal cohort's change sections) before the end."""
    flagged = flagged_cases(table, outcomes)
    failed = table[table["status"] == FAILED]
    counts = record["counts"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>KneeScope cohort report</title>",
        f"<style>{STYLE}</style></head><body><h1>KneeScope cohort report</h1>",
        f"<p>{counts['cases']} cases: {counts['ok']} ok, {counts['failed']} failed ({counts['this_run']} made by "
        f"this run, {counts['earlier']} by earlier runs). "
        f"Engine: {_e(_engine_line(record['engine']))}. "
        f"Created {_e(record['created_utc'])} from {_e(record['manifest'])}.</p>",
        "<h2>Segmentations to review</h2>",
        _review_table(table),
        "<h2>Flagged cases</h2>",
        _flag_table(flagged) if flagged else "<p>None: no QC warning, no value beyond 3 MAD.</p>",
        "<h2>Failed cases</h2>",
        _failed_table(failed) if len(failed) else "<p>None.</p>",
        f"<h2>Distributions</h2><p>One dot per case (above {MAX_DOTS} cases, bars count them and only flagged "
        f"cases are dots); line: median; band: ±{MAD_LIMIT:g} scaled MAD (cases outside it are flagged when at "
        f"least {MIN_CASES} cases were measured).</p>",
        *(strip_plot(table, spread(table, column)) for column in metric_columns(table)),
        *sections,
        "</body></html>",
    ]
    path = out / "cohort_report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _flag_table(flagged: dict[str, list[str]]) -> str:
    rows = "".join(
        f"<tr><td>{_case_link(case_id)}</td><td>{'<br>'.join(_e(r) for r in reasons)}</td></tr>"
        for case_id, reasons in flagged.items()
    )
    return f"<table><tr><th>case</th><th>why</th></tr>{rows}</table>"


def _review_table(table: pd.DataFrame) -> str:
    marked = segmentations_to_review(table)
    judged = int(table[VERDICT].notna().sum()) if VERDICT in table else 0
    ok = int((table[VERDICT] == "ok").sum()) if VERDICT in table else 0
    summary = (
        f"<p>{judged} segmentations judged: {ok} ok, {len(marked)} to look at (failed first, lowest score first).</p>"
    )
    if marked.empty:
        return summary
    rows = "".join(
        f"<tr class='{_e(r[VERDICT])}'><td>{_case_link(str(r['case_id']))}</td><td>{_e(r[VERDICT])}</td>"
        f"<td>{float(r[SCORE]):.2f}</td><td>{_e(_reasons(r[REASONS]))}</td></tr>"
        for _, r in marked.iterrows()
    )
    return f"{summary}<table><tr><th>case</th><th>verdict</th><th>score</th><th>reasons</th></tr>{rows}</table>"


def _reasons(cell: object) -> str:
    """The reasons cell as text ('' in results.csv becomes a missing value in the cohort table)."""
    return cell.replace(" | ", "; ") if isinstance(cell, str) and cell else "low score"


def _failed_table(failed: pd.DataFrame) -> str:
    rows = "".join(
        f"<tr><td>{_e(r.case_id)}</td><td>{_e(r.error_kind)}</td><td>{_e(r.error)}</td></tr>"
        for r in failed.itertuples()
    )
    return f"<table><tr><th>case</th><th>kind</th><th>error</th></tr>{rows}</table>"


def strip_plot(
    table: pd.DataFrame, s: Spread, *, ids: str = "case_id", folder: str = "cases", title: str | None = None
) -> str:
    """One dot per row (a histogram of the inliers above MAX_DOTS rows, so a large cohort's page stays light);
    each dot links to ``folder/<id>/``."""
    values = pd.to_numeric(table[s.column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    points = [(str(c), float(v)) for c, v in zip(table[ids], values, strict=True) if np.isfinite(v)]
    low = min([v for _, v in points] + [s.median - MAD_LIMIT * s.mad])
    high = max([v for _, v in points] + [s.median + MAD_LIMIT * s.mad])
    span = (high - low) or 1.0

    def x(value: float) -> float:
        return PAD + (value - low) / span * (WIDTH - 2 * PAD)

    band = (
        f"<rect x='{x(s.median - MAD_LIMIT * s.mad):.1f}' y='8' height='28' class='band' "
        f"width='{x(s.median + MAD_LIMIT * s.mad) - x(s.median - MAD_LIMIT * s.mad):.1f}'/>"
    )
    shown = points if len(points) <= MAX_DOTS else [p for p in points if p[0] in s.outliers]
    histogram = "" if len(points) <= MAX_DOTS else _histogram([v for c, v in points if c not in s.outliers], x)
    dots = "".join(
        f"<a href='{folder}/{_e(case_id)}/'><circle cx='{x(value):.1f}' cy='22' r='4' "
        f"class='{'out' if case_id in s.outliers else 'dot'}'><title>{_e(case_id)}: {value:.3f}</title></circle></a>"
        for case_id, value in shown
    )
    return (
        f"<h3>{_e(title or _label(s.column))}</h3><svg width='{WIDTH}' height='{HEIGHT}' role='img'>{band}{histogram}"
        f"<line x1='{x(s.median):.1f}' x2='{x(s.median):.1f}' y1='6' y2='38' class='median'/>{dots}"
        f"<text x='{PAD}' y='{HEIGHT - 4}'>{low:.2f}</text>"
        f"<text x='{WIDTH - PAD}' y='{HEIGHT - 4}' text-anchor='end'>{high:.2f}</text></svg>"
    )


def _histogram(values: list[float], x) -> str:
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    top = max(int(counts.max()), 1)
    return "".join(
        f"<rect x='{x(a):.1f}' width='{max(x(b) - x(a) - 1, 1):.1f}' y='{36 - 28 * n / top:.1f}' "
        f"height='{28 * n / top:.1f}' class='dot'><title>{a:.2f}-{b:.2f}: {n} cases</title></rect>"
        for a, b, n in zip(edges[:-1], edges[1:], counts, strict=True)
        if n
    )


def _label(column: str) -> str:
    for suffix, unit in (("_thickness_mean_mm", "mean thickness (mm)"), ("_t2_mean_ms", "mean T2 (ms)")):
        if column.endswith(suffix):
            return f"{column[: -len(suffix)].replace('_', ' ')} {unit}"
    return column


def _engine_line(engine: dict) -> str:
    if engine.get("name") != "ray":
        return "local (one process)"
    pools = ", ".join(f"{n} {pool.replace('_', '-')}" for pool, n in engine.get("workers", {}).items() if n)
    return f"Ray {engine.get('version')} ({engine.get('address')}; workers: {pools or 'none needed'})"


def _case_link(case_id: str) -> str:
    return f"<a href='cases/{_e(case_id)}/'>{_e(case_id)}</a>"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
    ".band{fill:#e6f0fa}.median{stroke:#336;stroke-width:2}.dot{fill:#2a6fb0}.out{fill:#d62728}"
    "svg text{font-size:11px;fill:#555}tr.failed td{background:#fde8e8}tr.review td{background:#fff4e0}"
)
