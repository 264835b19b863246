"""The app's own route to the interactive viewers: ``<root>/viewer/<token>/`` (pages and the websocket).

Viewers listen on 127.0.0.1 only and answer only their token (app/viewer_processes.py); this route is how a browser
reaches one: it checks the app's login (Gradio's session cookie, or --auth's absence), finds the viewer by the token in
the URL, and relays the request with the token header added. The same check therefore guards the page and the
viewers, directly or behind Caddy (which just passes the app's paths through).

The routes are handed to Gradio's FastAPI app at launch (``app_kwargs={"routes": ...}``), ahead of Gradio's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging

import httpx
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .viewer_processes import TOKEN_HEADER, Viewer, ViewerPool

logger = logging.getLogger(__name__)

PASSED_HEADERS = ("content-type", "cache-control", "etag", "last-modified", "location")


async def logged_in(connection: HTTPConnection) -> bool:
    """True when the app has no login, or this request carries a valid login (Gradio's own session cookie)."""
    app = connection.app
    dependency = getattr(app, "auth_dependency", None)
    if getattr(app, "auth", None) is None and dependency is None:
        return True
    if dependency is not None:
        user = dependency(connection)
        return (await user if inspect.isawaitable(user) else user) is not None
    cookie_id = getattr(app, "cookie_id", "")
    token = connection.cookies.get(f"access-token-{cookie_id}") or connection.cookies.get(
        f"access-token-unsecure-{cookie_id}"
    )
    return token is not None and token in getattr(app, "tokens", {})


def viewer_routes(pool: ViewerPool | None) -> list[BaseRoute]:
    """The proxy's routes for ``pool`` (none when viewers are disabled)."""
    if pool is None:
        return []

    async def find(connection: HTTPConnection) -> tuple[Viewer | None, Response | None]:
        if not await logged_in(connection):
            return None, PlainTextResponse("Log in to KneeScope first.", status_code=401)
        viewer = pool.find(connection.path_params["token"])
        if viewer is None:
            return None, PlainTextResponse("No such viewer (it closes 5 minutes after its last use).", 404)
        return viewer, None

    async def page(request: Request) -> Response:
        viewer, refusal = await find(request)
        if viewer is None:
            return refusal  # type: ignore[return-value]
        return await _relay_http(request, viewer)

    async def no_slash(request: Request) -> Response:
        return RedirectResponse(f"{request.path_params['token']}/", status_code=307)

    async def websocket(ws: WebSocket) -> None:
        viewer, _ = await find(ws)
        if viewer is None:
            await ws.close(code=1008)  # before accepting: the browser sees the handshake refused
            return
        await _relay_websocket(ws, viewer)

    return [
        WebSocketRoute("/viewer/{token}/ws", websocket),
        Route("/viewer/{token}/{path:path}", page, methods=["GET", "HEAD"]),
        Route("/viewer/{token}", no_slash, methods=["GET", "HEAD"]),
    ]


async def _relay_http(request: Request, viewer: Viewer) -> Response:
    url = f"http://127.0.0.1:{viewer.port}/{request.path_params['path']}"
    # Plain HTTP to the viewer on this machine: verify=False only spares loading the CA bundle for every relayed
    # request (~20 ms of the event loop each; a viewer page makes dozens), as there is no TLS to verify.
    async with httpx.AsyncClient(timeout=30, verify=False) as client:
        try:
            upstream = await client.request(
                request.method,
                url,
                params=request.query_params,
                headers={TOKEN_HEADER: viewer.token, "accept-encoding": "identity"},
            )
        except httpx.HTTPError as exc:
            logger.warning("viewer on port %d did not answer: %s", viewer.port, exc)
            return PlainTextResponse("The viewer is not answering; open it again from the page.", 502)
    headers = {k: v for k, v in upstream.headers.items() if k.lower() in PASSED_HEADERS}
    return Response(upstream.content, status_code=upstream.status_code, headers=headers)


async def _relay_websocket(ws: WebSocket, viewer: Viewer) -> None:
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{viewer.port}/ws"
    if ws.url.query:
        url += f"?{ws.url.query}"
    try:
        upstream = await connect(url, additional_headers={TOKEN_HEADER: viewer.token}, max_size=None)
    except Exception as exc:  # OSError, or websockets' own kinds for a refused handshake
        logger.warning("viewer websocket on port %d refused: %s", viewer.port, exc)
        await ws.close(code=1011)
        return
    await ws.accept()

    async def browser_to_viewer() -> None:
        with contextlib.suppress(WebSocketDisconnect, OSError):
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                await upstream.send(data if data is not None else message.get("text", ""))

    async def viewer_to_browser() -> None:
        async for data in upstream:
            if isinstance(data, bytes):
                await ws.send_bytes(data)
            else:
                await ws.send_text(data)

    tasks = [asyncio.ensure_future(browser_to_viewer()), asyncio.ensure_future(viewer_to_browser())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await upstream.close()
        with contextlib.suppress(Exception):  # the browser may be gone already
            await ws.close()
