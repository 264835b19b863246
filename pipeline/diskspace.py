"""Free disk space: checked before a job and before each large write, and a full disk named as such.

A disk that fills up makes writers fail in many ways: ``OSError`` with ENOSPC or EDQUOT from Python, gzip, zipfile
and matplotlib; an ``OSError`` with no error number from pyvista ("VTK writer failed to write file"). Each becomes
one :class:`~pipeline.errors.DiskFullError` with one sentence, so the app, the CLI and ``batch`` say the same thing.
``free_bytes`` is the one probe of free space (tests replace it).
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import DiskFullError

#: Free space below which a failed write is taken for a full disk even when the writer gave no error number.
NEARLY_FULL_BYTES = 16 * 1024 * 1024
#: The least free space a case needs before it starts (its results are checked again, sized, before writing).
MIN_FREE_FOR_A_CASE = 64 * 1024 * 1024
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def free_bytes(path: str | Path) -> int:
    """Bytes free for this user on the file system of ``path`` (or of its nearest existing parent)."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def results_bytes(voxels: int) -> int:
    """A generous estimate of what one case's results take on disk. Measured on synthetic knees without T2: about
    8 MB (meshes, GLB, report) plus 2.8 bytes per voxel (label maps, subregions, the zip of them all); a T2 map
    (float32 noise compresses poorly) adds up to 4 bytes per voxel, twice with the zip."""
    return 12 * voxels + 32 * 1024 * 1024


def ensure_free_space(folder: str | Path, needed: int, what: str = "the results") -> None:
    """DiskFullError unless ``needed`` bytes are free where ``folder`` is (or would be)."""
    free = free_bytes(folder)
    if free < needed:
        raise DiskFullError(what, Path(folder).name, free=free, needed=needed)


def is_disk_full(exc: BaseException, folder: str | Path | None = None) -> bool:
    """Whether ``exc`` is a write that failed for want of space: ENOSPC/EDQUOT, or any OSError while the disk of
    ``folder`` is (nearly) full."""
    if isinstance(exc, DiskFullError):
        return True
    if not isinstance(exc, OSError):
        return False
    if exc.errno in _FULL_ERRNOS:
        return True
    if folder is None:
        return False
    try:
        return free_bytes(folder) < NEARLY_FULL_BYTES
    except OSError:
        return False


@contextlib.contextmanager
def disk_full_named(folder: str | Path, what: str = "the results") -> Iterator[None]:
    """A write to ``folder`` that fails for want of space raises DiskFullError (other failures pass unchanged)."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        if not is_disk_full(exc, folder):
            raise
        raise DiskFullError(what, Path(folder).name, free=_free_or_none(folder)) from exc


def _free_or_none(folder: str | Path) -> int | None:
    try:
        return free_bytes(folder)
    except OSError:
        return None
