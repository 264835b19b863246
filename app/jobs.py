"""Per-job workspaces, the in-memory results they back, cancellation, and the retention sweeper.

Each job gets a folder named by an unguessable token under ``workdir/jobs``; the browser session only holds the
token. Uploads are deleted as soon as they are read; whole job folders are deleted after the retention time or
when disk use passes its bound (oldest first), so one user's work is never removed by another's request.
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

    def create(self, session: str | None) -> Job:
        token = secrets.token_urlsafe(16)
        job = Job(token, self.root / token)
        job.folder.mkdir(parents=True)
        with self._lock:
            self._jobs[token] = job
            if session:
                self._running[session] = job
        return job

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

    def finish(self, session: str | None, job: Job) -> None:
        with self._lock:
            if session and self._running.get(session) is job:
                del self._running[session]

    def cancel(self, session: str | None) -> bool:
        with self._lock:
            job = self._running.get(session or "")
        if job is None:
            return False
        job.cancel.set()
        return True

    def sweep(self, *, max_age_s: float, max_bytes: float) -> int:
        """Delete job folders older than ``max_age_s``, then the oldest while over ``max_bytes``."""
        now = time.time()
        folders = sorted((p for p in self.root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        removed = 0
        sizes = {p: _folder_bytes(p) for p in folders}
        total = sum(sizes.values())
        running = {job.folder for job in self._running.values()}
        for folder in folders:
            too_old = now - folder.stat().st_mtime > max_age_s
            if (too_old or total > max_bytes) and folder not in running:
                shutil.rmtree(folder, ignore_errors=True)
                total -= sizes[folder]
                removed += 1
                with self._lock:
                    self._jobs.pop(folder.name, None)
        return removed


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def start_sweeper(
    store: JobStore, *, retention_hours: float, max_disk_gb: float, every_s: float = 600
) -> threading.Thread:
    """A daemon thread that sweeps old results every ``every_s`` seconds."""

    def loop() -> None:
        while True:
            try:
                removed = store.sweep(max_age_s=retention_hours * 3600, max_bytes=max_disk_gb * 1e9)
                if removed:
                    logger.info("retention sweeper removed %d job folder(s)", removed)
            except OSError as exc:  # never let the sweeper die
                logger.warning("sweeper: %s", exc)
            time.sleep(every_s)

    thread = threading.Thread(target=loop, name="kneescope-sweeper", daemon=True)
    thread.start()
    return thread
