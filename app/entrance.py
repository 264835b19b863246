"""What the app notes as a request arrives, before Gradio sees it (pure ASGI middleware).

* **Arrival time.** A queued job's function only runs when its turn comes; comparing the time its request arrived
  with the time its session pressed Cancel tells whether it was waiting when Cancel came (and must not start).
  Gradio hands the job the original request (``gr.Request.request``), so the stamp travels with it.
* **Uploads named by a job entering the queue.** Identical uploads share one path in Gradio's cache; a session
  that ends removes the uploads it used unless another session uses them too. A job waiting in the queue uses its
  upload from the moment it joins, so the paths in its request are claimed for its session right there, not only
  when its turn comes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from .uploads import UploadRegistry

KEY = "kneescope_arrived"
MAX_JOIN_BODY = 1 << 20  # a queue request is a few kB of JSON (files travel through the upload route)


class QueueEntrance:
    def __init__(self, app, uploads: UploadRegistry | None = None):
        self.app = app
        self.uploads = uploads

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            scope.setdefault("state", {})[KEY] = time.monotonic()
        if self.uploads is not None and _is_queue_join(scope):
            body = await read_body(receive)
            self._claim(body)
            receive = replay(body, receive)
        await self.app(scope, receive, send)

    def _claim(self, body: bytes) -> None:
        if len(body) > MAX_JOIN_BODY:
            return
        try:
            request = json.loads(body)
        except ValueError:
            return  # Gradio answers it
        if not isinstance(request, dict) or not isinstance(request.get("session_hash"), str):
            return
        for path in _file_paths(request.get("data")):
            self.uploads.claim(request["session_hash"], path)  # type: ignore[union-attr]


def arrival_time(request) -> float | None:
    """The stamp on a Starlette request (None when absent: handlers called directly, tests, notebooks)."""
    scope = getattr(request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    value = state.get(KEY) if isinstance(state, dict) else None
    return float(value) if value is not None else None


def _is_queue_join(scope) -> bool:
    return scope["type"] == "http" and scope.get("method") == "POST" and scope.get("path", "").endswith("/queue/join")


async def read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive):
    delivered = False

    async def replayed():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # what follows the body: a disconnect

    return replayed


def _file_paths(data) -> Iterator[str]:
    """Paths of the files (Gradio FileData) among a request's inputs."""
    for value in data if isinstance(data, list) else []:
        if isinstance(value, dict) and isinstance(value.get("path"), str):
            yield value["path"]
