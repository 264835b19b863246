"""Retention that holds across restarts: delete what the app left on disk once it is older than the retention time.

Gradio's ``delete_cache`` only removes files the running process created, so after a crash or a restart, uploads,
cached slice images and results from before would stay on disk, and fetchable by URL, for ever. This sweep works
from the disk instead: at startup and then periodically, every entry of the jobs folder and of Gradio's upload and
cache folder (and any zip left unpacked in the temp dir by a crash) whose newest file is older than the retention
time is deleted; empty job folders go at once, and uploads Gradio left half-written (a client gone, a full disk)
after an hour; then the oldest job folders and Gradio cache entries while together they take more than the disk
bound, or while the disk has less free space than the policy's minimum (``make_room``, also called before a job
starts on a disk short of space). Running jobs and uploads a session still uses are never touched.
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

from pipeline import diskspace

from .jobs import JobStore
from .uploads import UploadRegistry

logger = logging.getLogger(__name__)
UNZIP_PATTERN = "kneescope-unzip-*"


PARTIAL_UPLOAD_PATTERN = "tmp*"  # Gradio writes an upload to <folder>/tmpXXXX, then renames it into a hash folder
PARTIAL_UPLOAD_AGE_S = 3600.0


@dataclass(frozen=True)
class RetentionPolicy:
    """How long files are kept, how much disk the job folders and Gradio's cache may take together, and how much
    free space to keep."""

    max_age_s: float
    max_bytes: float
    every_s: float = 600.0
    min_free_bytes: float = 0.0


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
    """Old and empty job folders; running jobs are skipped."""
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
    return removed


def make_room(
    store: JobStore, gradio_folder: Path | None, policy: RetentionPolicy, uploads: UploadRegistry | None = None
) -> int:
    """Remove the oldest job folders and Gradio cache entries (uploads, returned files) while together they take more
    than ``policy.max_bytes`` or the disk has less than ``policy.min_free_bytes`` free; running jobs and uploads in
    use are kept. Returns how many entries were removed."""
    running = store.running_folders()
    entries = [p for p in store.root.iterdir() if p.is_dir()]
    if gradio_folder is not None and gradio_folder.is_dir():
        entries += list(gradio_folder.iterdir())
    sizes = {p: _size(p) for p in entries}
    total, removed = sum(sizes.values()), 0
    for entry in sorted(entries, key=_last_use):
        if total <= policy.max_bytes and not _short_of_space(store, gradio_folder, policy):
            break
        if entry in running or (uploads is not None and _in_use(entry, uploads)):
            continue
        remove(entry)
        store.forget(entry)
        total -= sizes[entry]
        removed += 1
    if _short_of_space(store, gradio_folder, policy):
        logger.warning("retention: less than %.1f GB free with every old file removed", policy.min_free_bytes / 1e9)
    return removed


def _short_of_space(store: JobStore, gradio_folder: Path | None, policy: RetentionPolicy) -> bool:
    folders = [store.root] if gradio_folder is None else [store.root, gradio_folder]
    return any(diskspace.free_bytes(folder) < policy.min_free_bytes for folder in folders)


def _size(path: Path) -> int:
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    except FileNotFoundError:
        return 0


def _last_use(path: Path) -> float:
    try:
        return newest_mtime(path)
    except FileNotFoundError:
        return 0.0


def _in_use(entry: Path, uploads: UploadRegistry) -> bool:
    files = [entry] if entry.is_file() else [f for f in entry.rglob("*") if f.is_file()]
    return any(uploads.in_use(f) for f in files)


def sweep_all(
    store: JobStore, gradio_folder: Path | None, policy: RetentionPolicy, uploads: UploadRegistry | None = None
) -> int:
    """One pass over the job folders and Gradio's upload/cache folder."""
    removed = sweep_jobs(store, policy)
    if gradio_folder is not None:
        removed += sweep_by_age(gradio_folder, max_age_s=policy.max_age_s)
        partial_age = min(PARTIAL_UPLOAD_AGE_S, policy.max_age_s)
        removed += sweep_by_age(gradio_folder, max_age_s=partial_age, pattern=PARTIAL_UPLOAD_PATTERN)
    removed += make_room(store, gradio_folder, policy, uploads)
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
