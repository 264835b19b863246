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

from ..config import AnalysisConfig, InferenceOptions
from ..errors import InvalidInputError, KneePipelineError
from ..io import LABEL_SUFFIXES, image_kind
from ..labels import resolve_scheme
from .manifest import CohortCase
from .outcome import ANALYSIS, CRASH, INPUT, OK, CaseOutcome, failed
from .store import CohortStore

if TYPE_CHECKING:
    from ..engine import Engine

#: Test hook: a marker path; the first worker to finish writing a case (and find no marker) creates it and kills
#: its own process before committing, as a lost machine would. Used by tests/test_cohort.py only.
KILL_ONCE_ENV = "KNEESCOPE_COHORT_TEST_KILL_ONCE"


@dataclass(frozen=True)
class EngineSpec:
    """How a worker builds its engine: the model is loaded once per worker, and only if it segments."""

    model: str = "fullres"
    model_dir: str | None = None
    inference: InferenceOptions = field(default_factory=InferenceOptions)

    def build(self, *, segment: bool) -> Engine:
        from ..engine import Engine

        if not segment:
            return Engine(inference=self.inference)
        # No silent fallback to the demo model: a cohort table made by it would look like real results.
        return Engine.load(self.model, model_dir=self.model_dir, inference=self.inference, fallback_to_demo=False)


@dataclass(frozen=True)
class CaseOptions:
    """The analysis options of every case of a run (recorded in OUT/cohort_options.json)."""

    t2: bool | None = None
    shape_model: bool = False
    config: AnalysisConfig = field(default_factory=AnalysisConfig)
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
        result = engine.analyze(
            case.image,
            labels=case.labels,
            label_scheme=case.label_scheme,
            t2=options.t2,
            shape_model=options.shape_model,
            config=options.config,
            case_id=case.case_id,
        )
        result.write(attempt, make_zip=options.make_zip)
        _test_kill_once()
        outcome = _succeeded(case, result, time.perf_counter() - start, interrupted)
        store.commit(attempt, outcome)
        return outcome
    except KneePipelineError as exc:
        kind = INPUT if isinstance(exc, InvalidInputError) else ANALYSIS
        outcome = failed(case.case_id, str(exc), kind, inputs=case.inputs(), seconds=time.perf_counter() - start)
    except Exception as exc:  # a bug or a resource problem: the cohort goes on, the traceback is kept
        details = traceback.format_exc()
        message = f"{type(exc).__name__}: {exc} (traceback in failed/{case.case_id}.json)"
        outcome = failed(case.case_id, message, CRASH, inputs=case.inputs(), seconds=time.perf_counter() - start)
    finally:
        if attempt is not None:
            store.discard(attempt)
    store.record_failure(outcome, details)
    return outcome


def _succeeded(case: CohortCase, result, seconds: float, interrupted: int) -> CaseOutcome:
    segmentation = result.provenance.get("segmentation")
    return CaseOutcome(
        case.case_id,
        OK,
        round(seconds, 3),
        row={key: value for key, value in result.csv_row().items() if key != "case_id"},
        warnings=tuple(result.warnings),
        timings_s=dict(result.provenance.get("timings_s", {})),
        segmentation=None
        if segmentation is None
        else {key: segmentation.get(key) for key in ("model", "revision", "device", "engine_model")},
        inputs=case.inputs(),
        interrupted_attempts=interrupted,
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )


def _test_kill_once() -> None:
    marker = os.environ.get(KILL_ONCE_ENV)
    if not marker:
        return
    try:
        Path(marker).open("x").close()  # exclusive create: exactly one process, once, across the cluster
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
