"""Faults the user meets, said once and plainly (issue 25, items 7 and 8): a full disk before a job, during an
upload and while writing results; a user error logged as one line, its traceback only at DEBUG."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from gradio_client import handle_file

from pipeline import diskspace
from pipeline.io import write_volume
from tests.fixtures.app import files_named, page_client, running_app
from tests.fixtures.disk import MB, fill, pretend_free, small_disk
from tests.fixtures.knees import phantom

NO_MODEL = "(none: analysis of label maps only)"
SMALL = (0.8, 0.8, 1.0)
SERVER_FULL = "The server's disk is full"


def _run(url: str, labels: Path):
    args = (None, handle_file(str(labels)), "canonical", NO_MODEL, False, "Automatic", 0.5, False)
    return page_client(url).predict(*args, api_name="/run")


def _upload(url: str, name: str, size: int) -> httpx.Response:
    files = {"files": (name, b"\0" * size, "application/octet-stream")}
    return httpx.post(f"{url}gradio_api/upload", files=files, timeout=60)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("faults")
    with running_app(workdir) as (url, services):
        yield url, services, workdir


@pytest.fixture(scope="module")
def labels(tmp_path_factory) -> Path:
    return write_volume(phantom(side="left", spacing=SMALL).labels, tmp_path_factory.mktemp("in") / "knee_labels.nrrd")


def test_a_user_error_is_one_log_line_without_a_traceback(app, tmp_path, capfd, caplog):
    url, _, _ = app
    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    capfd.readouterr()
    with caplog.at_level(logging.INFO), pytest.raises(Exception, match="not a readable NIfTI file"):
        _run(url, empty)
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err + printed.out  # Gradio printed one for every gr.Error
    refusals = [r for r in caplog.records if r.name == "app.user_errors"]
    assert len(refusals) == 1 and refusals[0].levelno == logging.INFO and refusals[0].exc_info is None
    assert "empty.nii.gz: not a readable NIfTI file" in refusals[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="app"), pytest.raises(Exception, match="NIfTI"):
        _run(url, empty)
    # the traceback, at DEBUG only: where the upload was read (app/input_card.py) or the refusal raised
    debug = [r for r in caplog.records if r.name in ("app.user_errors", "app.input_card") and r.exc_info]
    assert debug and all(r.levelno == logging.DEBUG for r in debug)


def test_a_job_on_a_full_disk_is_refused_saying_so(app, labels, monkeypatch):
    url, services, _ = app
    pretend_free(monkeypatch, services.store.root, 20 * MB)  # under the 1 GB the app keeps free; uploads still fit
    jobs_before = sorted(services.store.root.iterdir())
    with pytest.raises(Exception, match=f"{SERVER_FULL} \\(20 MB free, about 1.0 GB needed\\)"):
        _run(url, labels)
    assert sorted(services.store.root.iterdir()) == jobs_before  # nothing started


def test_an_upload_that_cannot_fit_is_refused_before_it_is_written(app, monkeypatch):
    url, services, workdir = app
    pretend_free(monkeypatch, workdir, 5 * MB)
    before = _partials(services)
    refused = _upload(url, "big_upload.nii.gz", 1 * MB)  # 1 MB would leave less than the 1 GB kept free
    assert refused.status_code == 507 and refused.text.startswith(SERVER_FULL)
    assert _partials(services) == before and not files_named(services.uploads.folder, "big_upload*")


def _partials(services) -> set[Path]:
    """Files Gradio is writing an upload to (it also leaves some empty ones of its own)."""
    return set(services.uploads.folder.glob("tmp*"))


@pytest.fixture(scope="module")
def small_app(tmp_path_factory):
    """The app with its workdir (jobs and Gradio's uploads) on a 40 MB tmpfs; it keeps no free space of its own, so
    only the real disk refuses."""
    from app.settings import AppSettings

    with small_disk(tmp_path_factory.mktemp("disk"), 40) as disk:
        workdir = disk / "work"
        with running_app(workdir, settings=AppSettings(workdir=workdir, min_free_gb=0)) as (url, services):
            yield url, services, disk


def test_an_upload_that_fills_the_disk_leaves_no_partial_file(small_app, monkeypatch):
    url, services, disk = small_app
    filler = fill(disk, 2 * MB)
    before = _partials(services)
    try:
        assert _upload(url, "refused.bin", 3 * MB).status_code == 507  # the real free space: refused up front
        pretend_free(monkeypatch, disk, 1000 * MB)  # the up-front check passes; Gradio's write meets the full disk
        failed = _upload(url, "too_big.bin", 3 * MB)
        assert failed.status_code == 507 and failed.text.startswith(SERVER_FULL)
        assert _partials(services) == before  # the partial upload was removed
        monkeypatch.undo()
        assert _upload(url, "fits.bin", 256 * 1024).status_code == 200  # and the next upload that fits works
    finally:
        filler.unlink()


def test_results_that_fill_the_disk_are_said_to_be_a_full_server_disk(small_app, labels, monkeypatch):
    url, services, disk = small_app
    monkeypatch.setattr(diskspace, "results_bytes", lambda voxels: 0)  # let the writers run into the full disk
    filler = fill(disk, 3 * MB)
    jobs_before = sorted(services.store.root.iterdir())
    try:
        with pytest.raises(Exception, match=SERVER_FULL):
            _run(url, labels)
    finally:
        filler.unlink()
    assert sorted(services.store.root.iterdir()) == jobs_before  # the failed job's half-written folder is gone
