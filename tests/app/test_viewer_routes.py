"""The interactive 3-D viewer with --auth: reachable only through the app's authenticated route, never on its own
port, and gone when the app is killed. Also the login throttling, over HTTP."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from gradio_client import handle_file
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from pipeline.io import write_volume
from tests.deploy.test_caddy import _non_loopback_address
from tests.fixtures import REPO
from tests.fixtures.app import page_client, running_app
from tests.fixtures.knees import phantom

AUTH = ("alice", "s3cret-pass")
NO_MODEL = "(none: analysis of label maps only)"
ROOT = REPO


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    """An app with a login, one finished job, and its viewer opened by the logged-in user."""
    from app.settings import AppSettings

    tmp = tmp_path_factory.mktemp("viewer")
    labels = write_volume(phantom(side="left", spacing=(0.8, 0.8, 1.0)).labels, tmp / "knee_labels.nrrd")
    settings = AppSettings(workdir=tmp / "work", auth=AUTH)
    with running_app(tmp / "work", settings=settings) as (url, services):
        client = page_client(url, auth=AUTH)
        args = (None, handle_file(str(labels)), "canonical", NO_MODEL, False, "Automatic", 0.5, False)
        assert "<strong>Done</strong>" in client.predict(*args, api_name="/run")[0]
        link = client.predict(api_name="/viewer")
        path = link.split('href="')[1].split('"')[0]
        assert path.startswith("viewer/")
        (running,) = services.viewers._running.values()
        yield {"url": url, "path": path, "port": running.port, "results": next(iter(services.viewers._running))}


def _logged_in(url: str) -> httpx.Client:
    session = httpx.Client(base_url=url, follow_redirects=True, timeout=30)
    assert session.post("login", data={"username": AUTH[0], "password": AUTH[1]}).status_code == 200
    return session


def test_the_viewer_route_needs_the_login(viewer):
    url, path = viewer["url"], viewer["path"]
    refused = httpx.get(url + path, follow_redirects=True, timeout=30)
    assert refused.status_code == 401 and "trame" not in refused.text.lower()
    page = _logged_in(url).get(path)
    assert page.status_code == 200 and "trame" in page.text.lower()
    assert httpx.get(f"{url}viewer/not-a-viewer-token/", timeout=30).status_code in (401, 404)


def test_the_viewer_websocket_needs_the_login(viewer):
    url, path = viewer["url"], viewer["path"]
    ws_url = url.replace("http://", "ws://") + path + "ws"
    with pytest.raises(InvalidStatus):
        connect(ws_url, open_timeout=10).close()
    cookies = "; ".join(f"{k}={v}" for k, v in _logged_in(url).cookies.items())
    with connect(ws_url, additional_headers={"Cookie": cookies}, open_timeout=10) as ws:
        ws.send(_wslink_hello())
        reply = ws.recv(timeout=20)  # the viewer itself answers, through the relay
    assert isinstance(reply, bytes) and b"wslink" in reply


def _wslink_hello() -> bytes:
    """The first message a trame page sends: wslink's hello, msgpack-encoded behind its 12-byte chunk header."""
    import msgpack

    body = msgpack.packb(
        {"wslink": "1.0", "id": "system:c0:0", "method": "wslink.hello", "args": [{"secret": "wslink-secret"}]}
    )
    return (7).to_bytes(4, "little") + (0).to_bytes(4, "little") + len(body).to_bytes(4, "little") + body


def test_the_viewer_port_is_closed_to_the_network_and_needs_the_token(viewer):
    port = viewer["port"]
    address = _non_loopback_address()
    if address is not None:
        with pytest.raises(OSError), socket.create_connection((address, port), timeout=3):
            pass
    assert httpx.get(f"http://127.0.0.1:{port}/index.html", timeout=10).status_code == 403


def test_a_viewer_stops_when_the_app_is_killed(viewer):
    """SIGTERM kills the app without running its clean-up; the viewer follows through its closed pipe."""
    script = (
        "import sys; from pathlib import Path; from app.viewer_processes import ViewerPool; "
        "print(ViewerPool().open(Path(sys.argv[1])).port, flush=True); import time; time.sleep(600)"
    )
    app = subprocess.Popen(
        [sys.executable, "-c", script, str(viewer["results"])], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(app.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            pass
        app.send_signal(signal.SIGTERM)
        app.wait(timeout=10)
        deadline = time.time() + 15
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail(f"the viewer on port {port} kept serving after its app was killed")
    finally:
        app.kill()


def test_logins_are_throttled(viewer):
    """After five wrong passwords even the right one is refused, saying so, until the delay passes (2 s at first)."""
    login = f"{viewer['url']}login"
    for _ in range(5):
        assert httpx.post(login, data={"username": AUTH[0], "password": "guess"}, timeout=10).status_code == 400
    delayed = httpx.post(login, data={"username": AUTH[0], "password": AUTH[1]}, timeout=10)
    assert delayed.status_code == 429 and "Try again in 2 s" in delayed.json()["detail"]
    time.sleep(2.2)
    assert httpx.post(login, data={"username": AUTH[0], "password": AUTH[1]}, timeout=10).status_code == 200
