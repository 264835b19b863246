"""The cohort's change table (cohort_change.csv, cohort_change.parquet): one row per compared pair of visits.

Columns: ``pair_id``, ``subject_id``, ``baseline_visit``, ``followup_visit``, ``baseline_case_id``,
``followup_case_id``; with dates ``baseline_date``, ``followup_date``, ``interval_days``; the baseline row's other
manifest columns (group, age...); ``status``, ``run``, ``error``, ``error_kind``, ``seconds``, ``qc_flagged`` (a
registration QC warning or either visit's QC warning) and ``qc_warnings``; then every change.csv column (a name
the manifest already uses gets the suffix ``_result``). Rows in plan order: subject by subject, follow-ups in order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import pandas as pd

from .manifest import DATE, INPUT_COLUMNS, REQUIRED, SUBJECT, VISIT, Manifest
from .outcome import EARLIER, THIS_RUN, CaseOutcome
from .pairs import VisitPair
from .table import typed

PAIR_COLUMNS = ("pair_id", "subject_id", "baseline_visit", "followup_visit", "baseline_case_id", "followup_case_id")
DATE_COLUMNS = ("baseline_date", "followup_date", "interval_days")
STATUS_COLUMNS = ("status", "run", "error", "error_kind", "seconds", "qc_flagged", "qc_warnings")
#: the change.csv columns the pair columns already hold.
REPEATED = ("baseline_case_id", "followup_case_id")
NOT_CARRIED = (REQUIRED, *INPUT_COLUMNS, "label_scheme", SUBJECT, VISIT, DATE)


def change_table(
    manifest: Manifest,
    pairs: Sequence[VisitPair],
    outcomes: Mapping[str, CaseOutcome],
    earlier: Collection[str] = (),
) -> pd.DataFrame:
    """One row per pair (every pair must have an outcome)."""
    dated = DATE in manifest.columns
    carried = [column for column in manifest.columns if column not in NOT_CARRIED]
    own = [*PAIR_COLUMNS, *(DATE_COLUMNS if dated else ()), *carried, *STATUS_COLUMNS]
    change_columns: dict[str, None] = {}
    for pair in pairs:
        change_columns.update(dict.fromkeys(k for k in outcomes[pair.pair_id].row if k not in REPEATED))
    renamed = {column: f"{column}_result" if column in own else column for column in change_columns}
    records = []
    for pair in pairs:
        outcome = outcomes[pair.pair_id]
        base, fu = pair.baseline, pair.followup
        record: dict[str, object] = {
            "pair_id": pair.pair_id,
            "subject_id": pair.subject_id,
            "baseline_visit": base.cells.get(VISIT, ""),
            "followup_visit": fu.cells.get(VISIT, ""),
            "baseline_case_id": base.case_id,
            "followup_case_id": fu.case_id,
        }
        if dated:
            record.update(
                baseline_date=base.cells.get(DATE, ""),
                followup_date=fu.cells.get(DATE, ""),
                interval_days=pair.interval_days,
            )
        record.update({column: base.cells.get(column, "") for column in carried})
        record.update(
            status=outcome.status,
            run=EARLIER if pair.pair_id in earlier else THIS_RUN,
            error=outcome.error,
            error_kind=outcome.error_kind,
            seconds=outcome.seconds or None,
            qc_flagged=bool(outcome.warnings),
            qc_warnings=" | ".join(outcome.warnings),
        )
        record.update({renamed[k]: v for k, v in outcome.row.items() if k not in REPEATED})
        records.append(record)
    table = pd.DataFrame.from_records(records, columns=[*own, *renamed.values()])
    for column in renamed.values():
        table[column] = typed(table[column])
    text = [c for c in own if c not in ("interval_days", "seconds", "qc_flagged")]
    for column in text:
        table[column] = table[column].astype("string")
    table["seconds"] = table["seconds"].astype("float64")
    table["qc_flagged"] = table["qc_flagged"].astype("bool")
    if dated:
        table["interval_days"] = table["interval_days"].astype("Int64")
    return table
