"""Small full disks for tests: a real tmpfs (mounting needs root; skipped otherwise), filled to leave little free, or a
patched free-space probe (``pipeline.diskspace.free_bytes``, the one probe every check uses) where only the probe
matters."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

MB = 1_000_000  # as the messages count them


@contextmanager
def small_disk(folder: Path, size_mb: int = 40):
    """A tmpfs of ``size_mb`` mounted at ``folder`` (skips the test when it cannot be mounted)."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)]
    try:
        done = subprocess.run(mount, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path, leave_bytes: int) -> Path:
    """Take the disk of ``folder`` until about ``leave_bytes`` are free (a file outside anything the app removes)."""
    filler = folder / "filler.bin"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(filler, "ab") as handle:
        os.posix_fallocate(handle.fileno(), filler.stat().st_size, max(0, free - leave_bytes))
    return filler


def pretend_free(monkeypatch, folder: Path, free: int) -> None:
    """The free-space probe reports ``free`` bytes for paths under ``folder`` (the real value elsewhere)."""
    from pipeline import diskspace

    real = diskspace.free_bytes
    inside = Path(folder).absolute()

    def probe(path) -> int:
        return free if Path(path).absolute().is_relative_to(inside) else real(path)

    monkeypatch.setattr(diskspace, "free_bytes", probe)
