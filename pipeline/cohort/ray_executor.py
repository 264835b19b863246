"""``--engine ray``: the per-case function on a pool of Ray actors, each loading its engine (and model) once.

Ray core rather than Ray Data: a cohort is a list of independent cases whose records must each be written exactly
once, so every case is one actor call. Cases needing segmentation go to a pool of actors that hold the model (with
``num_gpus`` each, fractional to share a GPU); labels-only cases go to a pool whose engines load no model at all.
A case is handed to an actor only once the actor is up, so an actor that never starts (no GPU node yet) holds no
case. A worker process that dies is restarted by Ray and its case re-run (``RETRIES`` times); a case that still
loses its worker is recorded as failed with ``error_kind='worker_lost'`` and the actor is replaced. Actors are
released as soon as their pool runs out of cases, so a mixed cohort's second pool can start.

A longitudinal cohort's comparisons run on the labels pool (they need no model): each pair is queued as soon as
its two visits are done, and the pool grows again (up to its size) when pairs arrive after it shrank.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..engine import Engine
from ..engine_spec import EngineSpec
from ..errors import KneePipelineError
from .jobs import Job, PairGate, run_job
from .manifest import CohortCase
from .outcome import WORKER_LOST, CaseOutcome, failed
from .pairs import VisitPair
from .runner import CaseOptions
from .store import CohortStore

logger = logging.getLogger(__name__)

#: Re-runs of a case whose worker process died (so each case has up to 1 + RETRIES attempts).
RETRIES = 2
#: How often the driver says it is still waiting for actors that cannot start (no free CPU/GPU in the cluster).
WAIT_NOTICE_S = 60.0
Notify = Callable[[str], None]


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide to run: an existing cluster's address (None: start a local one), workers per pool."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None


class CaseWorker:
    """The Ray actor: builds its engine once (loading the model only when it segments), then runs job after job.

    A failure to build the engine (weights missing on this node, no usable device) is kept and reported by
    ``ready`` as one line, rather than raised from the constructor where Ray would bury it in a traceback.
    """

    def __init__(self, spec: EngineSpec, segment: bool, out: str, options: CaseOptions):
        self._store = CohortStore(out)
        self._options = options
        self._error = ""
        try:
            self._engine = Engine.from_spec(spec, segment=segment)
        except Exception as exc:
            self._error = " ".join(f"{type(exc).__name__}: {exc}".split())

    def ready(self) -> tuple[str, str]:
        """(host:pid, why this worker cannot run cases, or '')."""
        return f"{socket.gethostname()}:{os.getpid()}", self._error

    def run(self, job: Job) -> CaseOutcome:
        return run_job(self._engine, job, self._store, self._options)


@dataclass
class _Pool:
    name: str
    segment: bool
    queue: deque[Job]
    size: int
    num_gpus: float
    starting: int = 0
    live: int = 0
    error: str = ""
    actors: list[Any] = field(default_factory=list)


class RayExecutor:
    """Runs cases on Ray; ``info`` describes the engine for cohort.json once ``run`` has started."""

    def __init__(
        self,
        settings: RaySettings,
        *,
        spec: EngineSpec,
        store: CohortStore,
        options: CaseOptions,
        notify: Notify,
    ):
        self.settings, self.spec, self.store, self.options, self.notify = settings, spec, store, options, notify
        if settings.address:
            _check_reachable(settings.address)  # before anything is written
        self.info: dict[str, Any] = {
            "name": "ray",
            "version": _ray().__version__,
            "address": settings.address or "local",
        }
        self._waiting: dict[Any, tuple[_Pool, Any, Job | None]] = {}
        self._gate = PairGate()
        self._on_start: Callable[[], None] | None = None

    def run(
        self,
        cases: Sequence[CohortCase],
        *,
        pairs: PairGate | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> Iterator[CaseOutcome]:
        """Yield each case's (and pair's) outcome as it completes; ``on_start`` is called before the first job."""
        self._gate, self._on_start = pairs or PairGate(), on_start
        ready = self._gate.release()
        if not cases and not ready:
            return
        with ray_session(self.settings) as started:
            pools = self._plan(cases, ready, started_here=started)
            self._top_up(pools)
            try:
                yield from self._dispatch(pools)
            finally:
                for pool in pools:
                    for actor in pool.actors:
                        _ray().kill(actor)

    # --- sizing -------------------------------------------------------------------------------------------------
    def _plan(self, cases: Sequence[CohortCase], ready: list[VisitPair], *, started_here: bool) -> list[_Pool]:
        resources = _ray().cluster_resources()
        cpus, gpus = max(1, int(resources.get("CPU", 1))), float(resources.get("GPU", 0))
        segment: deque[Job] = deque(c for c in cases if c.needs_segmentation)
        labels: deque[Job] = deque([*ready, *(c for c in cases if not c.needs_segmentation)])
        per_worker = self._gpus_per_worker(gpus, bool(segment), started_here=started_here)
        by_gpu = int(gpus // per_worker) if per_worker and gpus else 0
        seg_size = min(len(segment), self.settings.workers or by_gpu or (1 if per_worker else cpus))
        label_size = min(len(labels) + self._gate.pending, self.settings.workers or cpus)
        self.info.update(
            cluster={"CPU": cpus, "GPU": gpus},
            workers={"segmentation": seg_size, "labels_only": label_size},
            gpus_per_worker=per_worker,
            retries_per_case=RETRIES,
        )
        return [
            _Pool("segmentation", True, segment, seg_size, per_worker),
            _Pool("labels", False, labels, label_size, 0.0),
        ]

    def _gpus_per_worker(self, gpus: float, segmenting: bool, *, started_here: bool) -> float:
        wanted = self.settings.gpus_per_worker
        if not segmenting:
            return 0.0
        if gpus == 0:
            if wanted:
                if started_here:
                    raise KneePipelineError(
                        f"--gpus-per-worker {wanted}: this machine has no GPU. Leave it out to segment on CPU workers."
                    )
                self.notify("No GPU in the Ray cluster yet: segmentation waits for GPU workers (autoscaling).")
                return wanted
            self.notify("No GPU in the Ray cluster: segmentation runs on CPU workers (minutes per case).")
            return 0.0
        return min(1.0, gpus) if wanted is None else wanted

    # --- the dispatch loop ----------------------------------------------------------------------------------------
    def _start_actor(self, pool: _Pool) -> None:
        remote = _actor_class().options(num_cpus=1, num_gpus=pool.num_gpus, max_restarts=-1, max_task_retries=RETRIES)
        actor = remote.remote(self.spec, pool.segment, str(self.store.root), self.options)
        pool.actors.append(actor)
        pool.starting += 1
        self._waiting[actor.ready.remote()] = (pool, actor, None)

    def _top_up(self, pools: list[_Pool]) -> None:
        """Start actors for queued jobs no running or starting actor will take, up to each pool's size."""
        for pool in pools:
            while pool.live + pool.starting < pool.size and pool.starting < len(pool.queue):
                self._start_actor(pool)

    def _dispatch(self, pools: list[_Pool]) -> Iterator[CaseOutcome]:
        ray = _ray()
        labels_pool = pools[-1]
        while any(job is not None for _, _, job in self._waiting.values()) or any(
            p.queue and (p.live or p.starting) for p in pools
        ):
            ready, _ = ray.wait(list(self._waiting), num_returns=1, timeout=WAIT_NOTICE_S)
            if not ready:
                self._say_waiting(pools)
                continue
            pool, actor, job = self._waiting.pop(ready[0])
            if job is None:
                outcomes = list(self._actor_ready(ready[0], pool, actor))
            else:
                outcomes = [self._case_done(ready[0], pool, actor, job, labels_pool)]
            self._top_up(pools)
            yield from outcomes

    def _release(self, job: Job, outcome: CaseOutcome, labels_pool: _Pool) -> None:
        """A finished visit may complete pairs: they join the labels pool's queue."""
        if isinstance(job, CohortCase):
            labels_pool.queue.extend(self._gate.release([outcome]))

    def _actor_ready(self, ref, pool: _Pool, actor) -> Iterator[CaseOutcome]:
        pool.starting -= 1
        try:
            where, error = _ray().get(ref)
        except _ray().exceptions.RayError as exc:
            where, error = "", _first_line(exc)
        if not error:
            logger.info("%s worker up: %s", pool.name, where)
            pool.live += 1
            self._feed(pool, actor)
            return
        _ray().kill(actor)
        pool.error = error
        logger.error("a %s worker could not start (%s): %s", pool.name, where, error)
        if not pool.live and not pool.starting:  # no worker will ever take these jobs
            while pool.queue:
                yield self._lost(pool.queue.popleft(), f"no {pool.name} worker could start: {error}")

    def _case_done(self, ref, pool: _Pool, actor, job: Job, labels_pool: _Pool) -> CaseOutcome:
        try:
            outcome = _ray().get(ref)
        except _ray().exceptions.RayError as exc:
            logger.error("job %s: worker lost %d times: %s", job.case_id, 1 + RETRIES, _first_line(exc))
            _ray().kill(actor)
            pool.live -= 1
            what = "comparing this pair" if isinstance(job, VisitPair) else "analysing this case"
            message = (
                f"the worker process died {1 + RETRIES} times while {what} (out of memory? a crash in a native "
                f"library? see batch.log): {_first_line(exc)}"
            )
            return self._lost(job, message)
        self._release(job, outcome, labels_pool)  # before feeding: an idle labels actor can take a released pair
        self._feed(pool, actor)
        return outcome

    def _feed(self, pool: _Pool, actor) -> None:
        if pool.queue:
            job = pool.queue.popleft()
            if self._on_start is not None:  # the first job starts: the run's options are recorded now
                self._on_start()
                self._on_start = None
            self._waiting[actor.run.remote(job)] = (pool, actor, job)
        else:  # this pool is done: free its CPU/GPU for the other pool
            _ray().kill(actor)
            pool.live -= 1

    def _lost(self, job: Job, message: str) -> CaseOutcome:
        outcome = failed(job.case_id, message, WORKER_LOST, inputs=job.inputs())
        (self.store.pair_store() if isinstance(job, VisitPair) else self.store).record_failure(outcome)
        return outcome

    def _say_waiting(self, pools: list[_Pool]) -> None:
        for pool in pools:
            if pool.queue and pool.starting and not pool.live:
                self.notify(
                    f"Waiting for {pool.name} workers: none has started yet (each needs 1 CPU"
                    + (f" and {pool.num_gpus} GPU" if pool.num_gpus else "")
                    + "; free them in the cluster, or lower --workers / --gpus-per-worker)."
                )


@contextmanager
def ray_session(settings: RaySettings) -> Iterator[bool]:
    """Join the cluster at ``settings.address``, or start a local one sized to the machine; yields 'started here'.

    An already initialised Ray (a notebook's ``ray.init``) is used as it is and left running. Ray's driver-side
    echo of worker messages is switched off (they stay in Ray's session logs): the terminal is for the progress bar.
    """
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        with _ray_logger_kept():
            if settings.address:
                _join(ray, settings.address, quiet)
            else:
                ray.init(address="local", num_cpus=max(os.cpu_count() or 1, settings.workers or 0), **quiet)
        logger.info("Ray %s %s", ray.__version__, f"joined {settings.address}" if settings.address else "started here")
    import ray._private.worker as ray_worker  # Ray's own debugger silences this echo the same way

    echo = getattr(ray_worker, "_worker_logs_enabled", True)
    ray_worker._worker_logs_enabled = False
    try:
        yield started
    finally:
        ray_worker._worker_logs_enabled = echo
        if started:
            ray.shutdown()


def _join(ray, address: str, options: dict) -> None:
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        cause = _first_line(exc.__cause__ or exc)
        raise KneePipelineError(
            f"Cannot join the Ray cluster at {address}: {cause}. Check the address (`ray status` on the head node); "
            "a cluster with token authentication also needs RAY_AUTH_MODE=token and its token (~/.ray/auth_token "
            "or RAY_AUTH_TOKEN) where this command runs."
        ) from exc


def _check_reachable(address: str) -> None:
    """Refuse an address nothing listens on at once: Ray itself retries such an address for many minutes."""
    if address == "auto" or "://" in address:
        return  # the head on this node (Ray finds it), or a Ray Client address (Ray checks it)
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise KneePipelineError(
            f"--ray-address {address}: expected HOST:PORT (the head's port, 6379 by default), 'auto' or "
            "ray://HOST:10001."
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise KneePipelineError(
            f"Cannot reach the Ray head at {address} ({exc.strerror or exc}): check the address (`ray status` on "
            "the head node) and that the port is open."
        ) from exc


@contextmanager
def _ray_logger_kept() -> Iterator[None]:
    """Keep the 'ray' logger's handlers (the run's log file) through ``ray.init(configure_logging=False)``.

    That call drops them and then logs (a token-authentication notice), which Python would print on stderr through
    its last-resort handler: the run's handler stands in for it meanwhile.
    """
    ray_logger = logging.getLogger("ray")
    handlers, last_resort = ray_logger.handlers[:], logging.lastResort
    if handlers:
        logging.lastResort = handlers[0]
    try:
        yield
    finally:
        logging.lastResort = last_resort
        ray_logger.handlers = handlers


@functools.cache
def _actor_class():
    return _ray().remote(CaseWorker)


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise KneePipelineError(
            "Ray is not installed: pip install 'ray[data]==2.60.0' (see requirements.txt), or use --engine local."
        ) from exc
    return ray


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
