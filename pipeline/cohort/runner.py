"""The per-case function every executor runs: the engine analyses the case, the result is written atomically.

``analyse_case`` calls ``Engine.analyze`` (the one orchestrator) and ``KneeAnalysis.write``; it never raises:
a case that fails becomes a failed outcome with its one-line message and is recorded under ``OUT/failed/``. It
returns a small :class:`CaseOutcome` (the results.csv row, QC warnings, timings), never an array, so the Ray object
store only carries summaries.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..diskspace import MIN_FREE_FOR_A_CASE, ensure_free_space, is_disk_full
from ..errors import DiskFullError, InvalidInputError, KneePipelineError
from ..io import LABEL_SUFFIXES, image_kind
from ..labels import resolve_scheme
from ..report.table import row_of
from ..request import AnalysisRequest
from .manifest import CohortCase
from .outcome import ANALYSIS, CRASH, INPUT, OK, CaseOutcome, failed
from .store import CohortStore

if TYPE_CHECKING:
    from ..engine import Engine

#: Test hook: a marker path; the first worker to finish writing a case (and find no marker) creates it and kills
#: its own process before committing, as a lost machine would. The hook is armed only while the marker's folder
#: exists. Used by the cohort tests only (``pairs_runner`` has the same hook for comparisons).
KILL_ONCE_ENV = "KNEESCOPE_COHORT_TEST_KILL_ONCE"


@dataclass(frozen=True)
class CaseOptions:
    """What every case of a run is asked for: the analysis options as a request without inputs (each case adds its
    image, labels, scheme and id), and whether to write each case's results zip."""

    request: AnalysisRequest = field(default_factory=AnalysisRequest)
    make_zip: bool = False


def precheck(case: CohortCase) -> None:
    """Cheap checks (no voxels read) that refuse a bad case before it reaches a worker or a model."""
    if case.image is not None:
        image_kind(case.image)
    if case.labels is not None:
        if not case.labels.is_file():
            raise InvalidInputError(f"{case.labels.name}: label map not found ({case.labels}).")
        if not case.labels.name.lower().endswith(LABEL_SUFFIXES):
            raise InvalidInputError(f"{case.labels.name}: label maps must be NIfTI, NRRD, MHA or DICOM-SEG files.")
        if case.label_scheme.lower() != "auto":
            resolve_scheme(case.label_scheme)


def analyse_case(engine: Engine, case: CohortCase, store: CohortStore, options: CaseOptions) -> CaseOutcome:
    """Analyse one case into OUT/cases/<case_id>/ (atomically); a failure is returned and recorded, never raised."""
    start = time.perf_counter()
    attempt, details = None, None
    try:
        attempt, interrupted = store.start_attempt(case.case_id)
        ensure_free_space(attempt, MIN_FREE_FOR_A_CASE, "the case's results")  # no analysis that cannot be kept
        result = engine.run(case.request(options.request))
        results = result.to_dict()  # once: the files and the cohort row read the same dict
        result.write(attempt, make_zip=options.make_zip, results=results)
        kill_once_for_tests(KILL_ONCE_ENV)
        outcome = _succeeded(case, result, row_of(results), time.perf_counter() - start, interrupted)
        store.commit(attempt, outcome)
        return outcome
    except Exception as exc:  # the cohort goes on: the case becomes a failed outcome
        seconds = time.perf_counter() - start
        outcome, details = failure_outcome(case.case_id, exc, store, "the case's results", case.inputs(), seconds)
    finally:
        if attempt is not None:
            store.discard(attempt)
    store.record_failure(outcome, details)
    return outcome


def failure_outcome(
    item_id: str, exc: Exception, store: CohortStore, what: str, inputs: dict[str, str], seconds: float
) -> tuple[CaseOutcome, str | None]:
    """The failed outcome of a case or pair that raised ``exc``, and the traceback to keep with it (None for the
    pipeline's own errors, whose message says it all). One classification for cases and pairs: bad input, an
    analysis that could not be done, a full disk (``what`` could not be written, said as such even when raised
    outside the result writers), or a crash (a bug or a resource problem, its traceback kept)."""
    if isinstance(exc, KneePipelineError):
        kind = INPUT if isinstance(exc, InvalidInputError) else ANALYSIS
        return failed(item_id, str(exc), kind, inputs=inputs, seconds=seconds), None
    details = "".join(traceback.format_exception(exc))
    if is_disk_full(exc, store.root):
        message, kind = str(DiskFullError(what, store.root.name)), ANALYSIS
    else:
        message, kind = f"{type(exc).__name__}: {exc} (traceback in {store.failures.name}/{item_id}.json)", CRASH
    return failed(item_id, message, kind, inputs=inputs, seconds=seconds), details


def _succeeded(case: CohortCase, result, row: dict, seconds: float, interrupted: int) -> CaseOutcome:
    segmentation = result.provenance.get("segmentation")
    return CaseOutcome(
        case.case_id,
        OK,
        round(seconds, 3),
        row={key: value for key, value in row.items() if key != "case_id"},
        warnings=tuple(result.warnings),
        timings_s=dict(result.provenance.get("timings_s", {})),
        segmentation=None
        if segmentation is None
        else {key: segmentation.get(key) for key in ("model", "revision", "device", "engine_model")},
        inputs=case.inputs(),
        interrupted_attempts=interrupted,
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )


def kill_once_for_tests(variable: str) -> None:
    marker = os.environ.get(variable)
    if not marker:
        return
    try:
        Path(marker).open("x").close()  # exclusive create: exactly one process, once, across the cluster
    except (FileExistsError, FileNotFoundError):  # killed already, or not armed (no folder)
        return
    os.kill(os.getpid(), signal.SIGKILL)
