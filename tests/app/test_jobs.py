"""Jobs: a queued job cancelled through the API never runs, and its upload goes (app/jobs.py)."""

from __future__ import annotations

import time

import pytest
from gradio_client import handle_file

from pipeline.io import write_volume
from tests.fixtures.app import NO_MODEL, SMALL, STATUS, files_named, page_client
from tests.fixtures.knees import phantom


# --- cancel ----------------------------------------------------------------------------------------------------
def test_a_queued_job_cancelled_through_the_api_never_runs(app, files):
    url, services, engine = app
    options = ("canonical", NO_MODEL, False, "Automatic", 0.5, False)
    own = phantom(side="right", spacing=SMALL, tibial_mm=2.4).labels  # an upload no other session shares
    own_file = write_volume(own, files["folder"] / "queued_labels.nrrd")
    before = len(engine.started)
    engine.gate.clear()  # the first job holds the lane until the gate opens
    try:
        first = page_client(url).submit(None, handle_file(str(files["left"])), *options, api_name="/run")
        deadline = time.time() + 60
        while len(engine.started) == before and time.time() < deadline:
            time.sleep(0.1)
        waiting = page_client(url)
        queued = waiting.submit(None, handle_file(str(own_file)), *options, api_name="/run")
        while queued.status().code.name not in ("IN_QUEUE",) and time.time() < deadline:
            time.sleep(0.1)  # it waits behind the first job
        assert "will not start" in waiting.predict(api_name="/cancel")[0]
    finally:
        engine.gate.set()
    assert "left knee" in first.result(timeout=120)[STATUS]
    with pytest.raises(Exception, match="before it started"):
        queued.result(timeout=120)
    assert len(engine.started) == before + 1  # the cancelled job never reached the engine
    assert not files_named(services.uploads.folder, "queued_labels.nrrd")  # and its upload is gone
