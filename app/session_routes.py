"""Gradio's session routes under the app's rules (pure ASGI middleware), and session hashes kept out of logs.

* **Login.** Gradio serves ``/gradio_api/heartbeat/<session>``, ``/cancel``, ``/reset`` and ``/stream/...`` without
  checking the login, yet they change a session's state: opening and dropping a heartbeat ends the session (its
  uploads are removed, its waiting jobs voided for good) and ``/cancel`` stops its events. With ``--auth`` they answer
  401 here unless the request carries a valid login cookie, as every other route of Gradio does.
* **Gradio's own cancel is the app's Cancel.** ``/cancel`` (what ``gradio_client``'s ``job.cancel()`` sends) cancels
  the event's asyncio task, which waits until the job's generator yields next (the thread running it cannot be
  interrupted): 5-12 s, while the analysis ran on to its end (bench/app_cancel_latency.py).
  Here a cancel of an analysis or comparison first does what the app's Cancel does for the session (app/jobs.py): its
  running job stops at its next progress report and the page's generator ends at once (app/worker.py), and a job of
  the session that arrived before the cancel, even one Gradio has just taken from the queue, never starts.
* **Logs.** A session hash is the key to a session's state: :class:`RedactSessionHashes` removes it from access-log
  lines (uvicorn's, should they be enabled; Caddy's logs are filtered in deploy/Caddyfile).
"""

from __future__ import annotations

import json
import logging
import re

from .entrance import read_body, replay
from .jobs import JOB_LANE, JobStore

logger = logging.getLogger(__name__)
SESSION_ROUTE = re.compile(r"/gradio_api/(?:heartbeat/|stream/|cancel/?$|reset/?$)")
CANCEL_ROUTE = re.compile(r"/gradio_api/cancel/?$")
MAX_CANCEL_BODY = 64 * 1024  # {"session_hash", "fn_index", "event_id"}: a few dozen bytes
NOT_AUTHENTICATED = json.dumps({"detail": "Not authenticated: log in first."}).encode()


class SessionRouteGuard:
    def __init__(self, app, *, auth_required: bool, store: JobStore | None = None):
        self.app = app
        self.auth_required = auth_required
        self.store = store

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not SESSION_ROUTE.search(scope.get("path", "")):
            return await self.app(scope, receive, send)
        if self.auth_required and not logged_in(scope):
            return await _refuse(send)
        if self.store is not None and scope.get("method") == "POST" and CANCEL_ROUTE.search(scope["path"]):
            body = await read_body(receive)
            self._cancel_session_jobs(scope, body)
            receive = replay(body, receive)
        await self.app(scope, receive, send)

    def _cancel_session_jobs(self, scope, body: bytes) -> None:
        try:
            request = json.loads(body) if len(body) <= MAX_CANCEL_BODY else None
        except ValueError:
            return  # Gradio answers it
        if not isinstance(request, dict) or not isinstance(request.get("session_hash"), str):
            return
        fn = _blocks_fn(scope, request.get("fn_index"))
        if fn is not None and getattr(fn, "concurrency_id", None) == JOB_LANE:  # a job, not a cheap view event
            self.store.cancel(request["session_hash"])  # type: ignore[union-attr]


def logged_in(scope) -> bool:
    """Whether the request carries a login cookie Gradio issued (its own check, ``get_current_user``); False when the
    app does not expose its tokens (a Gradio change): refused rather than let through."""
    from starlette.requests import HTTPConnection

    app = scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if not isinstance(tokens, dict) or cookie_id is None:
        return False
    cookies = HTTPConnection(scope).cookies
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return token is not None and tokens.get(token) is not None


def _blocks_fn(scope, fn_index):
    try:
        return scope["app"].get_blocks().fns.get(fn_index)
    except (KeyError, AttributeError, TypeError):
        return None


async def _refuse(send) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(NOT_AUTHENTICATED)).encode())]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": NOT_AUTHENTICATED})


_HASH_IN_URL = re.compile(r"(session_hash=|/heartbeat/)[^&/?#\s\"]+")


def redact_session_hashes(text: str) -> str:
    """``text`` with the session hash of every Gradio URL in it replaced by ``…``."""
    return _HASH_IN_URL.sub(r"\1…", text)


class RedactSessionHashes(logging.Filter):
    """A log filter: session hashes out of uvicorn's access lines (their arguments) and of any message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_session_hashes(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_session_hashes(record.msg)
        return True


def keep_session_hashes_out_of_logs() -> None:
    """Install the filter on uvicorn's access logger (idempotent)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSessionHashes) for f in access.filters):
        access.addFilter(RedactSessionHashes())
