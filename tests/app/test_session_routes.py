"""Gradio's session routes under --auth (issue 25, item 4), session hashes out of logs, and the security headers
(item 8) on the app's own responses."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from gradio_client import handle_file

from pipeline.io import write_volume
from tests.fixtures.app import files_named, page_client, running_app
from tests.fixtures.knees import phantom

AUTH = ("alice", "s3cret-pass")
NO_MODEL = "(none: analysis of label maps only)"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from app.settings import AppSettings

    workdir = tmp_path_factory.mktemp("routes")
    with running_app(workdir, settings=AppSettings(workdir=workdir, auth=AUTH)) as (url, services):
        yield url, services


def _logged_in(url: str) -> httpx.Client:
    session = httpx.Client(base_url=url, timeout=30)
    assert session.post("login", data={"username": AUTH[0], "password": AUTH[1]}).status_code == 200
    return session


def _heartbeat_status(client: httpx.Client, session_hash: str) -> tuple[int, bytes]:
    with client.stream("GET", f"gradio_api/heartbeat/{session_hash}") as response:
        first = next(response.iter_bytes(), b"") if response.status_code == 200 else b""
        return response.status_code, first


def test_session_routes_need_the_login(app):
    url, _ = app
    anonymous = httpx.Client(base_url=url, timeout=30)
    body = {"session_hash": "abcdefghijk", "fn_index": 0, "event_id": "0" * 32}
    assert _heartbeat_status(anonymous, "abcdefghijk")[0] == 401
    assert anonymous.post("gradio_api/cancel", json=body).status_code == 401
    assert anonymous.post("gradio_api/reset", json={"event_id": "x"}).status_code == 401
    assert anonymous.post(f"gradio_api/stream/{'0' * 32}/close").status_code == 401
    forged = httpx.Client(base_url=url, timeout=30, cookies={"access-token-unsecure-x": "made-up"})
    assert _heartbeat_status(forged, "abcdefghijk")[0] == 401
    session = _logged_in(url)
    assert _heartbeat_status(session, "abcdefghijk") == (200, b"data: ALIVE\n\n")
    assert session.post("gradio_api/cancel", json=body).status_code == 200


def test_a_heartbeat_dropped_by_someone_without_the_login_leaves_the_session_alone(app, tmp_path, monkeypatch):
    """Before: opening and dropping a heartbeat for another session's hash ended that session (its uploads
    removed, its waiting jobs voided)."""
    url, services = app
    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.5")
    labels = write_volume(phantom(side="left", spacing=(0.8, 0.8, 1.0)).labels, tmp_path / "owned_labels.nrrd")
    owner = page_client(url, auth=AUTH)
    args = (None, handle_file(str(labels)), "canonical", NO_MODEL, False, "Automatic", 0.5, False)
    assert "<strong>Done</strong>" in owner.predict(*args, api_name="/run")[0]
    assert files_named(services.uploads.folder, "owned_labels.nrrd")  # kept for the owner's session
    with httpx.Client(base_url=url, timeout=30) as intruder:
        assert _heartbeat_status(intruder, owner.session_hash)[0] == 401
    time.sleep(3)  # a session ended by the drop would have lost its upload by now
    assert files_named(services.uploads.folder, "owned_labels.nrrd")
    owner.close()


def test_security_headers_on_the_app_s_own_responses(app):
    url, _ = app
    for response in (
        httpx.get(url, timeout=30),  # the login page
        httpx.get(f"{url}gradio_api/heartbeat/abcdefghijk", timeout=30),  # refused here (401)
        httpx.post(f"{url}login", data={"username": "x", "password": "y"}, timeout=30),  # refused by Gradio (400)
        _logged_in(url).get("config"),
    ):
        headers = response.headers
        assert headers["x-frame-options"] == "SAMEORIGIN", response.url
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'self'" in csp and "object-src 'none'" in csp and "default-src 'self'" in csp


def test_the_login_page_says_that_failed_logins_delay_further_ones(app):
    url, _ = app
    assert "its logins are delayed" in httpx.get(url, timeout=30).text


def test_session_hashes_are_kept_out_of_access_logs(app, caplog):
    """uvicorn's access lines (off under Gradio's log level, but an operator may turn them on)."""
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/gradio_api/queue/data?session_hash=s3cr3thash1&x=1",
            "1.1",
            200,
        )
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/gradio_api/heartbeat/s3cr3thash2", "1.1", 200)
    text = caplog.text
    assert "s3cr3thash" not in text
    assert "session_hash=…&x=1" in text and "/gradio_api/heartbeat/…" in text
