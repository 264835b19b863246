"""Cancel, by the app's rules (issue 25, items 3 and 8): a closed page's waiting job never starts; Gradio's own
``/cancel`` stops a running job at once.

A page is "closed" as Gradio sees it: its heartbeat ends (``Client.close()`` stops only the heartbeat, so the
job's event stream stays open and Gradio itself does not drop the waiting event). Before the fix the unload handler
recorded the cancel and deleted the record at once, and the waiting job ran when its turn came."""

from __future__ import annotations

import threading
import time

import pytest
from gradio_client import handle_file

from pipeline.io import write_volume
from tests.fixtures.app import GatedEngine, files_named, page_client, running_app
from tests.fixtures.knees import phantom

NO_MODEL = "(none: analysis of label maps only)"
OPTIONS = ("canonical", NO_MODEL, False, "Automatic", 0.5, False)
SMALL = (0.8, 0.8, 1.0)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    engine = GatedEngine()
    workdir = tmp_path_factory.mktemp("closed")
    with running_app(workdir, engine=engine) as (url, services):
        yield url, services, engine


def _wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.1)


def test_a_closed_pages_waiting_job_never_starts(app, tmp_path, monkeypatch):
    """The closed page's job shares its label map with a later client's job (one path in Gradio's cache, kept for
    that client), so nothing but the cancel can stop it; its own image upload shows when the unload handler ran."""
    from pipeline.synthetic import render_mr

    url, services, engine = app
    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.5")  # a page's end noticed within a second
    first = write_volume(phantom(side="left", spacing=SMALL, tibial_mm=2.0).labels, tmp_path / "first.nrrd")
    knee = phantom(side="left", spacing=SMALL, tibial_mm=2.2).labels
    shared = write_volume(knee, tmp_path / "shared_labels.nrrd")
    image = write_volume(render_mr(knee), tmp_path / "abandoned_image.nrrd")
    engine.gate.clear()
    try:
        running = page_client(url).submit(None, handle_file(str(first)), *OPTIONS, api_name="/run")
        _wait_until(lambda: "first" in engine.started)
        page = page_client(url)
        abandoned = page.submit(handle_file(str(image)), handle_file(str(shared)), *OPTIONS, api_name="/run")
        _wait_until(lambda: abandoned.status().code.name == "IN_QUEUE")
        later = page_client(url).submit(None, handle_file(str(shared)), *OPTIONS, api_name="/run")
        _wait_until(lambda: later.status().code.name == "IN_QUEUE")  # queued behind the abandoned job
        page.close()  # the heartbeat ends: Gradio runs the unload handler for this session
        _wait_until(lambda: not files_named(services.uploads.folder, "abandoned_image.nrrd"))  # the handler ran
        assert files_named(services.uploads.folder, "shared_labels.nrrd")  # kept for the later job
    finally:
        engine.gate.set()
    assert "left knee" in running.result(timeout=120)[0]
    assert "left knee" in later.result(timeout=120)[0]  # its turn came after the abandoned job's
    assert engine.started == ["first", "shared_labels"]  # the abandoned job never reached the engine
    with pytest.raises(Exception, match="before it started"):
        abandoned.result(timeout=30)


def test_gradios_own_cancel_of_a_running_job_returns_at_once_and_stops_it(app, tmp_path):
    """Before, Gradio's ``/cancel`` (``job.cancel()``) left the analysis running to its end, and waited for the job's
    next page update to return (5-12 s; bench/app_cancel_latency.py). Here the analysis is held in the engine until
    the gate opens 20 s later, then stops at its first progress report."""
    url, _, engine = app
    knee = write_volume(phantom(side="right", spacing=SMALL).labels, tmp_path / "cancelled_knee.nrrd")
    engine.gate.clear()
    opener = threading.Timer(20, engine.gate.set)  # the analysis is held in the engine until then
    opener.start()
    try:
        job = page_client(url).submit(None, handle_file(str(knee)), *OPTIONS, api_name="/run")
        _wait_until(lambda: "cancelled_knee" in engine.started)
        start = time.monotonic()
        job.cancel()
        elapsed = time.monotonic() - start
    finally:
        engine.gate.set()
        opener.cancel()
    assert elapsed < 5, f"job.cancel() took {elapsed:.1f} s"
    _wait_until(lambda: "cancelled_knee" in engine.failed)  # the analysis stopped at its first progress report
    assert "cancelled_knee" not in engine.finished
