"""When each request reached the server, stamped before Gradio sees it.

A queued job's function only runs when its turn comes; comparing the time its request arrived with the time its
session pressed Cancel tells whether it was waiting when Cancel came (and must not start). Gradio hands the job the
original request (``gr.Request.request``), so the stamp travels with it.
"""

from __future__ import annotations

import time

KEY = "kneescope_arrived"


class StampArrival:
    """Pure ASGI middleware: ``scope["state"]["kneescope_arrived"] = time.monotonic()`` on every request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            scope.setdefault("state", {})[KEY] = time.monotonic()
        await self.app(scope, receive, send)


def arrival_time(request) -> float | None:
    """The stamp on a Starlette request (None when absent: handlers called directly, tests, notebooks)."""
    scope = getattr(request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    value = state.get(KEY) if isinstance(state, dict) else None
    return float(value) if value is not None else None
