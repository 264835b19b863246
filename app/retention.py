"""Retention that holds across restarts: delete what the app left on disk once it is older than the retention time.

Gradio's ``delete_cache`` only removes files the running process created, so after a crash or a restart, uploads,
cached slice images and results from before would stay on disk, and fetchable by URL, for ever. This sweep works
from the disk instead: at startup and then periodically, every entry of the jobs folder and of Gradio's upload and
cache folder (and any zip left unpacked in the temp dir by a crash) whose newest file is older than the retention
time is deleted; empty job folders go at once; then the oldest job folders while the jobs take more than the disk
bound. Running jobs are never touched.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .jobs import JobStore
from .uploads import UploadRegistry

logger = logging.getLogger(__name__)
UNZIP_PATTERN = "kneescope-unzip-*"


@dataclass(frozen=True)
class RetentionPolicy:
    """How long files are kept and how much disk the job folders may take."""

    max_age_s: float
    max_job_bytes: float
    every_s: float = 600.0


def newest_mtime(path: Path) -> float:
    """The most recent modification time of ``path`` or anything inside it (its last use)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                try:
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
                except FileNotFoundError:
                    continue
    return newest


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_by_age(
    root: Path, *, max_age_s: float, keep: Iterable[Path] = (), now: float | None = None, pattern: str = "*"
) -> int:
    """Delete the entries of ``root`` matching ``pattern`` (files or folders) last used more than ``max_age_s``
    ago, except ``keep``."""
    if not root.is_dir():
        return 0
    now = time.time() if now is None else now
    kept = set(keep)
    removed = 0
    for entry in list(root.glob(pattern)):
        try:
            too_old = entry not in kept and now - newest_mtime(entry) > max_age_s
        except FileNotFoundError:
            continue
        if too_old:
            remove(entry)
            removed += 1
    return removed


def sweep_jobs(store: JobStore, policy: RetentionPolicy, *, now: float | None = None) -> int:
    """Old and empty job folders, then the oldest while over the disk bound; running jobs are skipped."""
    running = store.running_folders()
    removed = 0
    for folder in [p for p in store.root.iterdir() if p.is_dir() and p not in running]:
        if not any(folder.iterdir()):  # a job that failed before writing anything
            remove(folder)
            store.forget(folder)
            removed += 1
    before = {p.name for p in store.root.iterdir()}
    removed += sweep_by_age(store.root, max_age_s=policy.max_age_s, keep=running, now=now)
    for name in before - {p.name for p in store.root.iterdir()}:
        store.forget(store.root / name)
    removed += _enforce_disk_bound(store, policy.max_job_bytes, running)
    return removed


def _enforce_disk_bound(store: JobStore, max_bytes: float, running: set[Path]) -> int:
    folders = sorted((p for p in store.root.iterdir() if p.is_dir()), key=newest_mtime)
    sizes = {p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for p in folders}
    total, removed = sum(sizes.values()), 0
    for folder in folders:
        if total <= max_bytes:
            break
        if folder in running:
            continue
        remove(folder)
        store.forget(folder)
        total -= sizes[folder]
        removed += 1
    return removed


def sweep_all(
    store: JobStore, gradio_folder: Path | None, policy: RetentionPolicy, uploads: UploadRegistry | None = None
) -> int:
    """One pass over the job folders and Gradio's upload/cache folder."""
    removed = sweep_jobs(store, policy)
    if gradio_folder is not None:
        removed += sweep_by_age(gradio_folder, max_age_s=policy.max_age_s)
    # zips unpacked by a process that crashed before removing them (pipeline/io/archives.py)
    removed += sweep_by_age(Path(tempfile.gettempdir()), max_age_s=policy.max_age_s, pattern=UNZIP_PATTERN)
    if uploads is not None:
        uploads.prune()
    if removed:
        logger.info("retention: removed %d old or empty folder(s)/file(s)", removed)
    return removed


def start_sweeper(
    store: JobStore, gradio_folder: Path | None, policy: RetentionPolicy, uploads: UploadRegistry | None = None
) -> threading.Thread:
    """Sweep once now (so a restart applies the retention before the first request), then every ``every_s``."""
    sweep_all(store, gradio_folder, policy, uploads)

    def loop() -> None:
        while True:
            time.sleep(policy.every_s)
            try:
                sweep_all(store, gradio_folder, policy, uploads)
            except OSError as exc:  # never let the sweeper die
                logger.warning("retention sweep: %s", exc)

    thread = threading.Thread(target=loop, name="kneescope-retention", daemon=True)
    thread.start()
    return thread
