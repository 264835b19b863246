"""The cohort table (cohort.csv, cohort.parquet) and the run's record (cohort.json).

One row per manifest case, in manifest order: the manifest's own columns as written, then ``status`` (ok/failed),
``run`` (this/earlier), ``error``, ``error_kind``, ``seconds``, ``segmentation_seconds``, then every column of the
case's results.csv. A results column whose name the manifest already uses gets the suffix ``_result``.
"""

from __future__ import annotations

import os
import platform
import sys
import uuid
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd

from .. import __version__
from ..report.provenance import package_versions
from .manifest import Manifest
from .outcome import EARLIER, FAILED, OK, THIS_RUN, CaseOutcome
from .store import write_json

COHORT_PACKAGES = ("ray", "pandas", "pyarrow")


def cohort_table(
    manifest: Manifest, outcomes: Mapping[str, CaseOutcome], earlier: Collection[str] = ()
) -> pd.DataFrame:
    """The table for every case of ``manifest`` (every case must have an outcome; ``earlier``: the ids whose
    outcome was re-read from an earlier run's record)."""
    own = list(manifest.columns)
    result_columns: dict[str, None] = {}  # ordered union: every results.csv has the same columns in the same order
    for outcome in outcomes.values():
        result_columns.update(dict.fromkeys(outcome.row))
    renamed = {column: f"{column}_result" if column in own else column for column in result_columns}
    records = []
    for case in manifest.cases:
        outcome = outcomes[case.case_id]
        record: dict[str, object] = {column: case.cells.get(column, "") for column in own}
        record.update(
            status=outcome.status,
            run=EARLIER if case.case_id in earlier else THIS_RUN,
            error=outcome.error,
            error_kind=outcome.error_kind,
            seconds=outcome.seconds or None,  # None: refused before it ran
            segmentation_seconds=outcome.segmentation_seconds,
        )
        record.update({renamed[key]: value for key, value in outcome.row.items()})
        records.append(record)
    table = pd.DataFrame.from_records(records, columns=[*own, *_status_columns(), *renamed.values()])
    for column in renamed.values():
        table[column] = typed(table[column])
    for column in [*own, "status", "run", "error", "error_kind"]:
        table[column] = table[column].astype("string")
    for column in ("seconds", "segmentation_seconds"):
        table[column] = table[column].astype("float64")
    return table


def _status_columns() -> list[str]:
    return ["status", "run", "error", "error_kind", "seconds", "segmentation_seconds"]


def typed(column: pd.Series) -> pd.Series:
    """Numbers as numbers (results.csv writes '' for a missing value), text as text."""
    blank = column.map(lambda value: isinstance(value, str) and not value) | column.isna()
    numeric = pd.to_numeric(column.where(~blank), errors="coerce")
    if numeric[~blank].notna().all():
        return numeric
    return column.where(~blank).astype("string")


def write_tables(table: pd.DataFrame, out: Path, *, stem: str = "cohort") -> dict[str, Path]:
    """<stem>.csv and <stem>.parquet (cohort, or cohort_change), each written whole and renamed into place."""
    written = {}
    writers: tuple[tuple[str, Callable[[pd.DataFrame, Path], None]], ...] = (
        (f"{stem}.csv", _csv),
        (f"{stem}.parquet", _parquet),
    )
    for name, writer in writers:
        path = out / name
        temporary = path.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        writer(table, temporary)
        os.replace(temporary, path)
        written[name] = path
    return written


def _csv(table: pd.DataFrame, path: Path) -> None:
    table.to_csv(path, index=False)


def _parquet(table: pd.DataFrame, path: Path) -> None:
    table.to_parquet(path, index=False)


def status_counts(outcomes: Mapping[str, CaseOutcome], earlier: Collection[str]) -> dict[str, int]:
    """ok and failed, and how many of the outcomes were made by this run or re-read from an earlier one."""
    counts = {status: sum(o.status == status for o in outcomes.values()) for status in (OK, FAILED)}
    done_earlier = sum(key in earlier for key in outcomes)
    return {**counts, "this_run": len(outcomes) - done_earlier, "earlier": done_earlier}


def cohort_record(
    manifest: Manifest,
    outcomes: Mapping[str, CaseOutcome],
    *,
    ran_now: list[str],
    earlier: Collection[str],
    engine: dict,
    model: str,
    options: dict,
    wall_seconds: float,
) -> dict:
    """cohort.json: counts, timings, the engine, the models and weights used, the options and package versions.

    Timings cover the cases that ran in this invocation (``ran_now``: analysed or failed on a worker).
    """
    ran = [outcomes[case_id] for case_id in ran_now]
    counts = status_counts(outcomes, earlier)
    segmented = [o.segmentation for o in outcomes.values() if o.segmentation]
    return {
        "kneescope": __version__,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "manifest": str(manifest.source),
        "counts": {"cases": len(manifest.cases), **counts},
        "failed_cases": [case.case_id for case in manifest.cases if outcomes[case.case_id].status == FAILED],
        "timings": {
            "wall_seconds": round(wall_seconds, 2),
            "cases_run": len(ran),
            "case_seconds_sum": round(sum(o.seconds for o in ran), 2),
            "segmentation_seconds_sum": round(sum(o.segmentation_seconds or 0.0 for o in ran), 2),
            "cases_per_hour": round(3600 * len(ran) / wall_seconds, 1) if ran and wall_seconds > 0 else None,
        },
        "engine": engine,
        "model": {
            "requested": model if segmented else None,
            "used": [dict(used) for used in sorted({tuple(sorted(s.items(), key=str)) for s in segmented}, key=str)],
            "segmented_cases": len(segmented),
        },
        "options": options,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {**package_versions(), **{name: _version(name) for name in COHORT_PACKAGES}},
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def write_record(record: dict, out: Path) -> Path:
    return write_json(out / "cohort.json", record)
