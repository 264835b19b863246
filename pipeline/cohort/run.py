"""``run_cohort``: a manifest in, one table out; resumable, and every case's fate recorded.

    table = run_cohort("MANIFEST.csv", "OUT/", engine="ray")     # pandas.DataFrame, one row per case
    visits, changes = run_cohort("MANIFEST.csv", "OUT/", longitudinal=True)   # and one row per pair of visits

Order of work: read and check the manifest (all its problems at once); lock OUT (one run per folder); refuse an
OUT folder started with other options; re-read cases already done (run 'earlier') and earlier failures (unless
``retry_failed``); refuse missing or unsupported inputs before any worker or model; check the segmentation weights
once if any case needs them (without them only those cases fail); run the rest on the chosen executor with a
progress bar, each pair of visits as soon as both are done (longitudinal), recording the options when the first
job starts; write cohort.csv, cohort.parquet, cohort.json and cohort_report.html (and the change tables).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from ..engine_spec import EngineSpec
from ..errors import KneePipelineError
from ..request import AnalysisRequest
from .change_run import blocked, change_outputs, plan_pairs_to_run
from .jobs import PairGate
from .local import LocalExecutor
from .lock import folder_lock
from .manifest import CohortCase, Manifest, read_manifest
from .outcome import FAILED, INPUT, MODEL, OK, CaseOutcome, failed
from .pairs import PAIR_MODES, plan_pairs
from .report import write_report
from .runner import CaseOptions, precheck
from .store import CohortStore
from .table import cohort_record, cohort_table, write_record, write_tables

logger = logging.getLogger(__name__)
ENGINES = ("local", "ray")


class CohortTables(NamedTuple):
    """A longitudinal cohort's two tables: one row per visit (cohort.csv), one per pair (cohort_change.csv)."""

    visits: pd.DataFrame
    changes: pd.DataFrame


def run_cohort(
    manifest: str | Path,
    out: str | Path,
    *,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    retry_failed: bool = False,
    request: AnalysisRequest | None = None,
    engine_spec: EngineSpec | None = None,
    make_zip: bool = False,
    longitudinal: bool = False,
    pairs: str = "baseline",
    progress: bool = True,
    notify: Callable[[str], None] | None = None,
) -> pd.DataFrame | CohortTables:
    """Analyse every case of a cohort into ``out``; returns the cohort table (also in ``out``/cohort.csv).

    Args:
        manifest: MANIFEST.csv (case_id, image and/or labels, optional label_scheme, any other columns), or a
            folder: one case per image file, zip or DICOM series folder in it.
        out: the cohort folder; cases go to ``out/cases/<case_id>/``. Running again resumes it.
        engine: 'local' (this process, in manifest order) or 'ray' (actors, each loading the model once).
        ray_address: join this Ray cluster (default: start a local one sized to the machine).
        workers: actors per pool (default: one per GPU when segmenting on GPUs, else one per CPU).
        gpus_per_worker: GPU share of each segmenting actor (default 1 when the cluster has GPUs, else CPU workers).
        retry_failed: run again the cases an earlier run recorded as failed (by default their record stands).
        request: the analysis every case gets (T2, shape model, config...), as a request without inputs; its
            label_scheme is the scheme of rows whose label_scheme cell is empty. Default: AnalysisRequest().
        engine_spec: the segmentation model for cases without labels (default EngineSpec(): the published fullres
            model; a cohort never falls back to the demo model).
        make_zip: also write each case's results zip.
        longitudinal: the manifest names each row's subject_id and visit (optional date): also compare each
            follow-up with the subject's baseline, from the two visits' analysis folders, on the same executor.
            Returns ``CohortTables(visits, changes)`` then.
        pairs: 'baseline' (each follow-up vs the subject's first visit) or 'consecutive' (vs the visit before).
        progress: show a progress bar (stderr).
        notify: where notices go (default: printed on stderr above the bar).
    Raises:
        KneePipelineError (ManifestError, FolderInUseError...): nothing could run; the message says why.
    """
    start = time.perf_counter()
    if engine not in ENGINES:
        raise KneePipelineError(f"Unknown engine '{engine}': use 'local' or 'ray'.")
    if pairs not in PAIR_MODES:
        raise KneePipelineError(f"--pairs {pairs}: use 'baseline' or 'consecutive'.")
    if pairs != "baseline" and not longitudinal:
        raise KneePipelineError("--pairs needs --longitudinal.")
    _check_sizes(workers, gpus_per_worker)
    store = CohortStore(out)
    # No silent fallback to the demo model: a cohort table made by it would look like real results.
    spec = (engine_spec or EngineSpec()).with_changes(fallback_to_demo=False)
    options = CaseOptions(request or AnalysisRequest(), make_zip=make_zip)
    say = notify or _notice
    executor = _executor(engine, spec, store, options, ray_address, workers, gpus_per_worker, say)
    cohort = read_manifest(manifest, label_scheme=str(options.request.label_scheme), longitudinal=longitudinal)
    visit_pairs = plan_pairs(cohort, pairs, _compare_settings()) if longitudinal else []
    fingerprint = _fingerprint(cohort, spec, options)
    with folder_lock(store.root, notify=say):
        store.check_options(fingerprint)
        outcomes, jobs, earlier = plan_cases(cohort, store, retry_failed=retry_failed)
        jobs = _without_model(jobs, spec, store, outcomes)
        pair_plan = plan_pairs_to_run(visit_pairs, store.pair_store(), earlier, retry_failed=retry_failed)
        gate = PairGate(pair_plan.to_run, outcomes)
        ran_now: list[str] = []
        with _logs_to(store.root / "batch.log"):
            logger.info(
                "cohort %s: %d cases, %d to run on %s; %d pairs, %d to run",
                cohort.source,
                len(cohort.cases),
                len(jobs),
                engine,
                len(visit_pairs),
                len(pair_plan.to_run),
            )
            run = executor.run(jobs, pairs=gate, on_start=lambda: store.record_options(fingerprint))
            known = [*outcomes.values(), *pair_plan.outcomes.values()]
            for outcome in _with_progress(run, total=len(jobs) + gate.pending, earlier=known, show=progress):
                (pair_plan.outcomes if outcome.case_id in gate.ids else outcomes)[outcome.case_id] = outcome
                ran_now.append(outcome.case_id)
        store.tidy()
        store.pair_store().tidy()
        for pair in visit_pairs:  # pairs that could not run: a visit failed
            pair_plan.outcomes.setdefault(pair.pair_id, blocked(pair, outcomes))
        table = cohort_table(cohort, outcomes, earlier)
        record = cohort_record(
            cohort,
            outcomes,
            ran_now=[case_id for case_id in ran_now if case_id in outcomes],
            earlier=earlier,
            engine=executor.info,
            model=spec.model,
            options=fingerprint,
            wall_seconds=time.perf_counter() - start,
        )
        sections: list[str] = []
        changes = None
        if longitudinal:
            change = change_outputs(
                cohort,
                pair_plan,
                pairs,
                ran_now=[pair_id for pair_id in ran_now if pair_id in pair_plan.outcomes],
                case_seconds=record["timings"]["case_seconds_sum"],
                out=store.root,
            )
            record["pairs"], sections, changes = change.record, change.sections, change.table
            changes.attrs["statistics"] = change.statistics
        write_tables(table, store.root)
        write_record(record, store.root)
        write_report(table, outcomes, record, store.root, sections=sections)
    table.attrs["cohort"] = record
    if changes is not None:
        changes.attrs["cohort"] = record
        return CohortTables(table, changes)
    return table


def plan_cases(
    cohort: Manifest, store: CohortStore, *, retry_failed: bool
) -> tuple[dict[str, CaseOutcome], list[CohortCase], set[str]]:
    """Outcomes known without running (done earlier, failed earlier, refused by the cheap checks), the rest, and
    the ids whose outcome was re-read from an earlier run's record."""
    outcomes: dict[str, CaseOutcome] = {}
    earlier_ids: set[str] = set()
    jobs = []
    for case in cohort.cases:
        inputs = case.inputs()
        done = store.done(case.case_id, inputs)
        if done is not None:
            outcomes[case.case_id] = dataclasses.replace(done, status=OK)
            earlier_ids.add(case.case_id)
            continue
        earlier = None if retry_failed else store.failure(case.case_id, inputs)
        if earlier is not None:
            outcomes[case.case_id] = earlier
            earlier_ids.add(case.case_id)
            continue
        try:
            precheck(case)
        except KneePipelineError as exc:
            outcomes[case.case_id] = refused = failed(case.case_id, str(exc), INPUT, inputs=inputs)
            store.record_failure(refused)
            continue
        jobs.append(case)
    return outcomes, jobs, earlier_ids


def _without_model(
    jobs: list[CohortCase], spec: EngineSpec, store: CohortStore, outcomes: dict[str, CaseOutcome]
) -> list[CohortCase]:
    """When the segmentation model cannot be had, the cases that need it fail (kind 'model'); the rest run."""
    if not any(case.needs_segmentation for case in jobs):
        return jobs
    from ..weights import resolve_model

    try:
        resolve_model(spec.model, model_dir=spec.model_dir)  # each worker resolves it again, from the same cache
    except KneePipelineError as exc:
        for case in (case for case in jobs if case.needs_segmentation):
            outcomes[case.case_id] = refused = failed(case.case_id, str(exc), MODEL, inputs=case.inputs())
            store.record_failure(refused)
        return [case for case in jobs if not case.needs_segmentation]
    return jobs


def _compare_settings() -> dict:
    """The comparison's options each pair records (a change of defaults re-runs the pairs)."""
    from ..longitudinal import CompareOptions

    return CompareOptions().to_dict()


def _fingerprint(cohort: Manifest, spec: EngineSpec, options: CaseOptions) -> dict:
    """The options that change the numbers: the request's (serialised) and, when a case is segmented, the model's
    (the device and the number of workers do not change them)."""
    segments = any(case.needs_segmentation for case in cohort.cases)
    inference = {k: v for k, v in spec.inference.to_dict().items() if k != "device"}
    return {
        "model": spec.model if segments else None,
        "model_dir": spec.model_dir if segments else None,
        "inference": inference if segments else None,
        **options.request.options_dict(),
    }


def _check_sizes(workers: int | None, gpus_per_worker: float | None) -> None:
    if workers is not None and workers < 1:
        raise KneePipelineError(f"--workers must be at least 1, got {workers}.")
    if gpus_per_worker is not None and gpus_per_worker < 0:
        raise KneePipelineError(f"--gpus-per-worker must be 0 or more, got {gpus_per_worker}.")


def _executor(engine, spec, store, options, ray_address, workers, gpus_per_worker, notify):
    if engine == "ray":
        from .ray_executor import RayExecutor, RaySettings

        settings = RaySettings(ray_address, workers, gpus_per_worker)
        return RayExecutor(settings, spec=spec, store=store, options=options, notify=notify)
    if ray_address or workers or gpus_per_worker:
        raise KneePipelineError("--ray-address, --workers and --gpus-per-worker need --engine ray.")
    return LocalExecutor(spec, store, options)


def _with_progress(
    outcomes: Iterator[CaseOutcome], *, total: int, earlier: Iterable[CaseOutcome], show: bool
) -> Iterator[CaseOutcome]:
    """A tqdm bar over the jobs to run (cases, then pairs as they become ready): done/failed counts in its postfix,
    remaining and ETA from tqdm."""
    from tqdm import tqdm

    before = list(earlier)
    done_earlier = sum(o.status == OK for o in before)
    counts = {"ok": 0, "failed": sum(o.status == FAILED for o in before)}
    with tqdm(total=total, unit="job", desc="Cohort", file=sys.stderr, disable=not (show and total)) as bar:
        bar.set_postfix(counts, done_earlier=done_earlier)
        for outcome in outcomes:
            counts["failed" if outcome.status == FAILED else "ok"] += 1
            bar.set_postfix(counts, done_earlier=done_earlier)
            bar.update(1)
            yield outcome


def _notice(message: str) -> None:
    from tqdm import tqdm

    logger.warning(message)
    tqdm.write(f"NOTICE: {message}", file=sys.stderr)


@contextmanager
def _logs_to(path: Path) -> Iterator[None]:
    """During the run, KneeScope's and Ray's log messages go to OUT/batch.log, not through the progress bar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in ("pipeline", "ray"):  # Ray's own logger has a handler of its own on stderr: replaced, then restored
        target = logging.getLogger(name)
        saved.append((target, target.handlers[:], target.level, target.propagate))
        target.handlers = [handler]
        target.setLevel(min(target.getEffectiveLevel(), logging.INFO))
        target.propagate = False
    try:
        yield
    finally:
        for target, handlers, level, propagate in saved:
            target.handlers = handlers
            target.setLevel(level)
            target.propagate = propagate
        handler.close()
