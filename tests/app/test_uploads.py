"""Uploads: several clients sending the same file, an upload shared with a waiting job outliving the session
that ends, and forged input paths (app/uploads.py)."""

from __future__ import annotations

import threading
import time

import httpx
from gradio_client import handle_file

from pipeline.io import write_volume
from tests.fixtures.app import NO_MODEL, SMALL, STATUS, call_raw, file_data, files_named, page_client, run_job
from tests.fixtures.knees import phantom


# --- shared uploads --------------------------------------------------------------------------------------------
def test_four_clients_uploading_the_same_file_at_once_all_finish(app, files):
    url, services, _ = app
    results: dict[int, object] = {}

    def go(i: int) -> None:
        try:
            results[i] = run_job(page_client(url), None, files["left"])
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert all(isinstance(r, tuple) and "left knee" in r[STATUS] for r in results.values()), results
    assert len(results) == 4
    assert "Files are kept for 6 hours" in results[0][STATUS]  # the retention setting, not a fixed 24
    for job in services.store.root.iterdir():  # every job's private input copies are gone
        assert not (job / "input").exists()


def test_an_upload_shared_with_a_waiting_job_outlives_the_session_that_ends(app, files, monkeypatch):
    """Two clients upload the same file (one path in Gradio's cache); the first client's session ends while the
    second's job waits in the queue: the upload stays for the waiting job, and goes when its session ends too."""
    url, services, engine = app
    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.5")  # sessions' ends noticed within a second
    shared = write_volume(phantom(side="left", spacing=SMALL, tibial_mm=2.2).labels, files["folder"] / "shared.nrrd")
    options = ("canonical", NO_MODEL, False, "Automatic", 0.5, False)
    engine.gate.clear()
    try:
        leaving = page_client(url)
        leaving.submit(None, handle_file(str(shared)), *options, api_name="/run")  # runs, held at the gate
        staying = page_client(url)
        waiting = staying.submit(None, handle_file(str(shared)), *options, api_name="/run")
        deadline = time.time() + 30
        while waiting.status().code.name != "IN_QUEUE" and time.time() < deadline:
            time.sleep(0.1)
        leaving.close()  # its session ends: its running job is cancelled, its uploads released
        time.sleep(3)
        assert files_named(services.uploads.folder, "shared.nrrd"), "the waiting job's upload was deleted"
    finally:
        engine.gate.set()
    assert "left knee" in waiting.result(timeout=120)[STATUS]
    staying.close()
    deadline = time.time() + 10
    while files_named(services.uploads.folder, "shared.nrrd") and time.time() < deadline:
        time.sleep(0.2)
    assert not files_named(services.uploads.folder, "shared.nrrd")  # no session uses it any more


# --- forged inputs ---------------------------------------------------------------------------------------------
def test_a_forged_input_path_is_refused_and_deletes_nothing(app, files):
    url, services, _ = app
    run_job(page_client(url), None, files["left"])  # someone's finished job, with results in the cache
    cached = files_named(services.uploads.folder, "labels.nii.gz")[0]
    in_job = files_named(services.store.root, "labels.nii.gz")[0]
    for forged in (cached, in_job):
        kind, stream = call_raw(url, [None, file_data(forged)])
        assert kind == "error", stream[-500:]
        assert forged.is_file()
    assert "was not uploaded to this server" in call_raw(url, [None, file_data(cached)])[1]
    assert httpx.get(f"{url}gradio_api/file={cached}", timeout=10).status_code == 200  # the owner's link works
