"""Per-job workspaces, the in-memory results they back, queue tickets and cancellation.

Each job gets a folder named by an unguessable token under ``workdir/jobs``; the browser session only holds the
token. A job's inputs are private copies in its own ``input/`` folder, deleted when it ends; a failed or cancelled
job's folder is deleted whole, so no empty or half-written folders stay behind. Old folders are removed by the
retention sweep (app/retention.py), never by another user's request.

Cancel, from the page or from the API, also stops jobs still waiting in the queue: it records when the session
cancelled, and a job whose request arrived before that is refused when its turn comes, so it never starts
(the arrival time is stamped on each request by app/entrance.py). A closed page cancels the same way, and the record
is kept (a day, at most ``MAX_CANCELLED_SESSIONS`` sessions) so that its waiting jobs never start.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)
CANCEL_MEMORY_S = 24 * 3600
JOB_LANE = "gpu"  # the queue lane (concurrency_id) every analysis and comparison shares, one job at a time
MAX_CANCELLED_SESSIONS = 100_000  # about 10 MB; far more sessions than a day of page loads


class JobCancelled(Exception):
    """The user pressed Cancel."""


@dataclass
class Job:
    token: str
    folder: Path
    created: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event)
    result: object | None = None
    stack: object | None = None
    surfaces_glb: dict = field(default_factory=dict)

    @property
    def inputs(self) -> Path:
        """Where the job's private copies of its inputs live (deleted when the job ends)."""
        return self.folder / "input"

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise JobCancelled("Cancelled.")


class JobStore:
    """Jobs by token, with a bound on how many results stay in memory."""

    def __init__(self, workdir: Path, *, keep_in_memory: int = 6):
        self.root = workdir / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep_in_memory
        self._running: dict[str, Job] = {}  # session hash -> running job, for Cancel
        # session hash -> time.monotonic() of its last Cancel (or closed page), oldest first
        self._cancelled_at: OrderedDict[str, float] = OrderedDict()

    # --- the queue ---------------------------------------------------------------------------------------------
    def create(self, session: str | None, submitted_at: float | None = None) -> Job:
        """The job's folder and record, when its turn comes. JobCancelled when the session cancelled after the
        job's request arrived (``submitted_at``, time.monotonic()): it waited in the queue and must not start."""
        with self._lock:
            cancelled_at = self._cancelled_at.get(session or "")
            if submitted_at is not None and cancelled_at is not None and cancelled_at >= submitted_at:
                raise JobCancelled("Cancelled before it started.")
            token = secrets.token_urlsafe(16)
            job = Job(token, self.root / token)
            job.folder.mkdir(parents=True)
            self._jobs[token] = job
            if session:
                self._running[session] = job
        return job

    def cancel(self, session: str | None) -> bool:
        """Stop ``session``'s running job at its next progress report and refuse its waiting ones; True when a job
        was running."""
        if not session:
            return False
        now = time.monotonic()
        with self._lock:
            self._cancelled_at[session] = now
            self._cancelled_at.move_to_end(session)
            while self._cancelled_at and (
                len(self._cancelled_at) > MAX_CANCELLED_SESSIONS
                or now - next(iter(self._cancelled_at.values())) > CANCEL_MEMORY_S  # far older than any wait
            ):
                self._cancelled_at.popitem(last=False)
            job = self._running.get(session)
        if job is not None:
            job.cancel.set()
        return job is not None

    def finish(self, session: str | None, job: Job, *, keep: bool) -> None:
        """The job ended: its input copies go; its whole folder too unless ``keep`` (it has results to show)."""
        with self._lock:
            if session and self._running.get(session) is job:
                del self._running[session]
            if not keep:
                self._jobs.pop(job.token, None)
        shutil.rmtree(job.inputs if keep else job.folder, ignore_errors=True)

    def running_folders(self) -> set[Path]:
        with self._lock:
            return {job.folder for job in self._running.values()}

    def forget(self, folder: Path) -> None:
        """Drop the record of a job whose folder the retention sweep removed."""
        with self._lock:
            self._jobs.pop(folder.name, None)

    # --- results kept in memory ---------------------------------------------------------------------------------
    def remember(self, job: Job, *, result=None, stack=None) -> None:
        """Keep a job's result in memory (for sliders and toggles); the oldest ones beyond the bound are dropped."""
        with self._lock:
            if result is not None:
                job.result = result
            if stack is not None:
                job.stack = stack
            holders = [j for j in self._jobs.values() if j.result is not None or j.stack is not None]
            for old in holders[: max(0, len(holders) - self._keep)]:
                old.result = old.stack = None  # its files stay on disk until the sweeper removes them

    def get(self, token: str | None) -> Job | None:
        if not token:
            return None
        with self._lock:
            return self._jobs.get(token)
