"""The server's disk: no job and no upload starts without room, and a full disk is said as such.

* **Before a job** (``ensure_room_for_a_job``): with less free space than the retention policy keeps, the oldest
  results and cached files are removed first (app/retention.py ``make_room``); if that is not enough the job is
  refused with "The server's disk is full…" instead of failing half-way with an OSError.
* **Uploads** (:class:`UploadSpaceGuard`, pure ASGI middleware on Gradio's upload route): an upload larger than the
  free space (less the space kept free) is refused before a byte is written, with HTTP 507 and the same sentence; if
  the disk fills up while Gradio writes it, the half-written files that appeared during the request are removed
  (every upload in progress is failing then, for the same reason) and the answer is that sentence, not a bare 500.
  Uploads abandoned half-way for other reasons (a client gone) are removed by the retention sweep after an hour.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from pipeline import diskspace
from pipeline.diskspace import MIN_FREE_FOR_A_CASE, ensure_free_space, is_disk_full
from pipeline.errors import DiskFullError

from .retention import PARTIAL_UPLOAD_PATTERN, make_room
from .user_errors import server_disk_full

logger = logging.getLogger(__name__)
UPLOAD_ROUTE = re.compile(r"/gradio_api/upload/?$")
UPLOAD_REFUSED = (
    b"The server's disk is full: the upload was refused. Try again later; if this persists, tell the server's "
    b"administrator."
)


def ensure_room_for_a_job(services) -> None:
    """Raise the page's disk-full error unless the job folder's disk keeps its free space after ``make_room``."""
    policy = services.retention
    needed = int(policy.min_free_bytes) if policy is not None else MIN_FREE_FOR_A_CASE
    root = services.store.root
    if diskspace.free_bytes(root) >= needed:
        return
    if policy is not None:
        gradio = services.uploads.folder if services.uploads is not None else None
        make_room(services.store, gradio, policy, services.uploads)
    try:
        ensure_free_space(root, needed, "a new job's results")
    except DiskFullError as exc:
        raise server_disk_full(exc) from None


class UploadSpaceGuard:
    def __init__(self, app, *, folder: str | Path, keep_free_bytes: float = 0):
        self.app = app
        self.folder = Path(folder)
        self.keep_free_bytes = keep_free_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or not UPLOAD_ROUTE.search(scope.get("path", "")):
            return await self.app(scope, receive, send)
        if diskspace.free_bytes(self.folder) < _content_length(scope) + self.keep_free_bytes:
            logger.warning("upload refused: the disk of %s is full", self.folder)
            return await _refuse(send)
        before = _partials(self.folder)
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except OSError as exc:
            if not is_disk_full(exc, self.folder):
                raise
            for partial in _partials(self.folder) - before:
                _remove_partial(partial)
            logger.warning("upload failed: the disk of %s filled up; its partial file was removed", self.folder)
            if started:
                raise
            await _refuse(send)


def _partials(folder: Path) -> set[Path]:
    """Gradio's uploads being written (or left half-written): ``tmp*`` files directly in its folder."""
    try:
        return {p for p in folder.glob(PARTIAL_UPLOAD_PATTERN) if p.is_file()}
    except OSError:
        return set()


def _remove_partial(path: Path) -> None:
    """Emptied first: Gradio still holds the file open (its traceback does), and an open file's blocks are freed
    only when it is closed, unless it is truncated."""
    try:
        os.truncate(path, 0)
        path.unlink()
    except FileNotFoundError:
        pass


def _content_length(scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return max(0, int(value))
            except ValueError:
                return 0
    return 0


async def _refuse(send) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(UPLOAD_REFUSED)).encode())]
    await send({"type": "http.response.start", "status": 507, "headers": headers})
    await send({"type": "http.response.body", "body": UPLOAD_REFUSED})
