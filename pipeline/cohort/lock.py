"""One batch run per cohort folder: ``OUT/batch.lock``.

The lock is an advisory ``flock`` on ``OUT/batch.lock``, which also records who holds it (host, pid, start time).
The kernel drops the flock when its process ends, however it ends, so a run killed by SIGKILL or a crashed machine
leaves no lock that blocks the next run: the file is still there with the dead run's details (a stale lock), and
the next run takes it over and says so. A second run while the first is alive is refused, naming the first.
The file is never deleted (deleting a locked file lets two runs lock two different files); a clean exit empties it.
On a shared cluster filesystem, flock needs a filesystem that supports it (NFSv4, CephFS, Lustre with flock).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import KneePipelineError

LOCK_NAME = "batch.lock"


class FolderInUseError(KneePipelineError):
    """Another batch run is writing to the same cohort folder."""


@contextlib.contextmanager
def folder_lock(out: Path, *, notify: Callable[[str], None] | None = None) -> Iterator[dict]:
    """Hold OUT/batch.lock for the duration; yields this run's record. Raises FolderInUseError when held."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUseError(
                f"{out} is in use by another batch run ({_describe(_read(handle))}). Wait for it to finish, or use "
                "another --out folder."
            ) from None
        stale = _read(handle)
        if stale and notify is not None:
            notify(
                f"{path.name}: the run that held it ({_describe(stale)}) ended without releasing it (killed or "
                "crashed); this run takes it over and resumes the cohort."
            )
        record = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        _write(handle, json.dumps(record))
        try:
            yield record
        finally:
            _write(handle, "")  # released cleanly: no stale record for the next run to report
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


def _read(handle: int) -> dict:
    os.lseek(handle, 0, os.SEEK_SET)
    text = os.read(handle, 4096).decode("utf-8", "replace")
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        return {"unreadable": text[:80]}
    return data if isinstance(data, dict) else {}


def _write(handle: int, text: str) -> None:
    os.ftruncate(handle, 0)
    os.lseek(handle, 0, os.SEEK_SET)
    os.write(handle, text.encode())
    os.fsync(handle)


def _describe(record: dict) -> str:
    if not record:
        return "details not recorded yet"
    return f"pid {record.get('pid', '?')} on {record.get('host', '?')}, started {record.get('started', '?')}"
