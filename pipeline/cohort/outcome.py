"""What one case of a cohort came to: the small summary a worker returns (never arrays) and the done marker holds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

OK, FAILED = "ok", "failed"
#: the table's ``run`` column: the outcome was made by this invocation, or re-read from an earlier run's record.
THIS_RUN, EARLIER = "this", "earlier"
#: error_kind values: a bad input (found before any model work where possible), an analysis that could not
#: complete (no knee found, ...), an unexpected exception (a bug: traceback in OUT/failed/), a worker process lost,
#: no segmentation model to be had (only the cases that need one), a comparison whose visit failed.
INPUT, ANALYSIS, CRASH, WORKER_LOST = "input", "analysis", "crash", "worker_lost"
MODEL, VISIT_FAILED = "model", "visit_failed"


@dataclass(frozen=True)
class CaseOutcome:
    """One case's result in the cohort.

    Attributes:
        case_id: the manifest's case id.
        status: 'ok' or 'failed' (whether it ran now or earlier is the table's ``run`` column).
        seconds: wall time of the case on its worker (reading, analysis, writing).
        error: the one-line specific message of a failed case.
        error_kind: 'input', 'analysis', 'crash' or 'worker_lost' for a failed case.
        row: the case's results.csv row (column -> value).
        warnings: the case's QC warnings.
        timings_s: seconds per stage (load, segmentation, morphometry, ...).
        segmentation: model, revision and device of the segmentation, None when labels were given.
        inputs: image, labels and label scheme as the manifest gave them (a changed row re-runs the case).
        interrupted_attempts: earlier attempts of this case that died mid-way (their partial output was discarded).
        worker: host:pid of the process that ran it.
    """

    case_id: str
    status: str
    seconds: float = 0.0
    error: str = ""
    error_kind: str = ""
    row: dict[str, object] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    segmentation: dict[str, object] | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    interrupted_attempts: int = 0
    worker: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == OK

    @property
    def segmentation_seconds(self) -> float | None:
        return self.timings_s.get("segmentation") if self.segmentation else None

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, data: dict) -> CaseOutcome:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        return cls(**{**values, "warnings": tuple(values.get("warnings", ()))})


def failed(case_id: str, message: str, kind: str, *, inputs: dict[str, str], seconds: float = 0.0) -> CaseOutcome:
    """A failed case; the message is kept to one line for the table."""
    one_line = " ".join(str(message).split())
    return CaseOutcome(case_id, FAILED, round(seconds, 3), error=one_line, error_kind=kind, inputs=inputs)
