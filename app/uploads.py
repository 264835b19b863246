"""Uploads in Gradio's cache: which paths are real uploads, which sessions use them, and removing them.

Gradio stores an upload under ``GRADIO_TEMP_DIR/<content hash>/<name>``, so identical files from different users
share one path, and a client may name any path under that folder (another job's cached result, say) as its input.
Hence a job never deletes what it was given: it checks that the path came through Gradio's upload route, copies it
into its own folder and deletes only that copy. The upload itself is removed when the last page session that used
it ends or cancels (``release``), and otherwise by the retention sweep.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections import defaultdict
from collections.abc import Set
from pathlib import Path

from pipeline.diskspace import ensure_free_space

logger = logging.getLogger(__name__)


class UploadRefused(Exception):
    """A path given as an input that this server did not receive as an upload (or no longer has)."""


class UploadRegistry:
    """Real uploads (Gradio's own record of what its upload route saved) and the sessions that use each one.

    Args:
        folder: Gradio's upload folder (``GRADIO_TEMP_DIR``).
        uploaded: the live set of paths Gradio's upload route saved (``Blocks.upload_file_set``).
    """

    def __init__(self, folder: str | Path, uploaded: Set[str] = frozenset()):
        self.folder = Path(os.path.realpath(folder))
        self._uploaded = uploaded
        self._users: defaultdict[str, set[str]] = defaultdict(set)  # upload path -> sessions using it
        self._lock = threading.Lock()

    def track(self, uploaded: Set[str]) -> None:
        """Follow Gradio's live record of saved uploads (``Blocks.upload_file_set``, known once the page exists)."""
        self._uploaded = uploaded

    def verify(self, path: str, *, what: str = "The file") -> Path:
        """The upload's real path; UploadRefused when it was not uploaded here, lies elsewhere, or is gone."""
        real = os.path.realpath(path)
        name = Path(path).name
        if not self._is_upload(path, real):
            logger.warning("refused an input path that was not uploaded: %s", path)
            raise UploadRefused(f"{what} '{name}' was not uploaded to this server. Upload it again.")
        if not os.path.isfile(real):
            raise UploadRefused(
                f"{what} '{name}' is no longer on the server (removed after cancelling, leaving the page, or the "
                "retention time). Upload it again."
            )
        return Path(real)

    def claim(self, session: str | None, path: str | None) -> bool:
        """Record that ``session`` uses the upload ``path`` (ignored unless it is a real upload)."""
        if not session or not path or not self._is_upload(path, os.path.realpath(path)):
            return False
        with self._lock:
            self._users[os.path.realpath(path)].add(session)
        return True

    def release(self, session: str | None) -> int:
        """Forget ``session``'s uploads and delete those no other session uses; returns how many were deleted."""
        if not session:
            return 0
        with self._lock:
            mine = [path for path, users in self._users.items() if session in users]
            orphans = []
            for path in mine:
                self._users[path].discard(session)
                if not self._users[path]:
                    del self._users[path]
                    orphans.append(path)
        for path in orphans:
            _remove_upload(Path(path), self.folder)
        return len(orphans)

    def in_use(self, path: str | Path) -> bool:
        """Whether some session has claimed the upload at ``path``."""
        with self._lock:
            return os.path.realpath(path) in self._users

    def prune(self) -> None:
        """Forget uploads that are gone (the retention sweep removed them), so the record stays small."""
        with self._lock:
            for path in [p for p in self._users if not os.path.exists(p)]:
                del self._users[path]

    def _is_upload(self, path: str, real: str) -> bool:
        inside = real.startswith(str(self.folder) + os.sep)
        listed = path in self._uploaded or real in self._uploaded or os.path.abspath(path) in self._uploaded
        return inside and listed


def _remove_upload(path: Path, folder: Path) -> None:
    """Delete one upload and its content-hash folder when that is left empty."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    parent = path.parent
    if parent != folder and parent.parent == folder:
        with contextlib.suppress(OSError):
            parent.rmdir()  # only when empty


def copy_input(path: str | Path, target: Path) -> Path:
    """A private copy of an input inside the job's folder: a hard link when possible (no bytes copied; deleting
    either name leaves the other), else a real copy (DiskFullError when it does not fit)."""
    source = Path(path)
    target.mkdir(parents=True, exist_ok=True)
    destination = target / source.name
    if source.is_dir():
        return Path(shutil.copytree(source, destination))
    try:
        os.link(source, destination)
    except OSError:  # another file system, or links not allowed
        ensure_free_space(target, source.stat().st_size, f"a copy of {source.name}")
        shutil.copyfile(source, destination)
    return destination
