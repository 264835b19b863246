"""The app under a demanding user and a reviewer: shared uploads, forged paths, damaged files, memory bombs, queued
cancels, retention across restarts. Small synthetic knees (0.8 mm voxels) keep each job to a few seconds."""

from __future__ import annotations

import gzip
import os
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from gradio_client import Client, handle_file

from pipeline.engine import Engine
from pipeline.io import write_volume

from .app_fixtures import GatedEngine, running_app
from .conftest import phantom
from .dicom_fixtures import write_series

NO_MODEL = "(none: analysis of label maps only)"
STATUS = 0
SMALL = (0.8, 0.8, 1.0)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from app.settings import AppSettings

    engine = GatedEngine()
    workdir = tmp_path_factory.mktemp("app")
    settings = AppSettings(workdir=workdir, max_upload_mb=40, retention_hours=6)
    with running_app(workdir, engine=engine, settings=settings) as (url, services):
        yield url, services, engine


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from pipeline.synthetic import render_mr

    folder = tmp_path_factory.mktemp("knees")
    left = phantom(side="left", spacing=SMALL).labels
    right = phantom(side="right", spacing=SMALL).labels
    image = render_mr(left)
    return {
        "left": write_volume(left, folder / "left_labels.nrrd"),
        "right": write_volume(right, folder / "right_labels.nrrd"),
        "image_nii": write_volume(image, folder / "left.nii.gz"),
        "image_nrrd": write_volume(image, folder / "left.nrrd"),
        "image": image,
        "folder": folder,
    }


def _run(client, image=None, labels=None):
    return client.predict(
        handle_file(str(image)) if image else None,
        handle_file(str(labels)) if labels else None,
        "canonical",
        NO_MODEL,
        False,
        "Automatic",
        0.5,
        False,
        api_name="/run",
    )


def _uploaded(services, name: str) -> list[Path]:
    """The uploads called ``name``; an upload folder removed while it is listed is simply not there."""
    while True:
        try:
            return list(services.uploads.folder.rglob(name))
        except FileNotFoundError:
            continue


def _file_data(path) -> dict:
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


def _call(url: str, data: list) -> tuple[str, str]:
    """/run through Gradio's plain HTTP API with raw inputs (as a hand-made client would send them)."""
    inputs = [*data, "canonical", NO_MODEL, False, "Automatic", 0.5, False]
    event = httpx.post(f"{url}gradio_api/call/run", json={"data": inputs}, timeout=30).json()["event_id"]
    stream = httpx.get(f"{url}gradio_api/call/run/{event}", timeout=180).text
    kind = "complete" if "event: complete" in stream else "error"
    return kind, stream


# --- shared uploads --------------------------------------------------------------------------------------------
def test_four_clients_uploading_the_same_file_at_once_all_finish(app, files):
    url, services, _ = app
    results: dict[int, object] = {}

    def go(i: int) -> None:
        try:
            results[i] = _run(Client(url, verbose=False), None, files["left"])
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
        leaving = Client(url, verbose=False)
        leaving.submit(None, handle_file(str(shared)), *options, api_name="/run")  # runs, held at the gate
        staying = Client(url, verbose=False)
        waiting = staying.submit(None, handle_file(str(shared)), *options, api_name="/run")
        deadline = time.time() + 30
        while waiting.status().code.name != "IN_QUEUE" and time.time() < deadline:
            time.sleep(0.1)
        leaving.close()  # its session ends: its running job is cancelled, its uploads released
        time.sleep(3)
        assert _uploaded(services, "shared.nrrd"), "the waiting job's upload was deleted"
    finally:
        engine.gate.set()
    assert "left knee" in waiting.result(timeout=120)[STATUS]
    staying.close()
    deadline = time.time() + 10
    while _uploaded(services, "shared.nrrd") and time.time() < deadline:
        time.sleep(0.2)
    assert not _uploaded(services, "shared.nrrd")  # no session uses it any more


# --- forged inputs ---------------------------------------------------------------------------------------------
def test_a_forged_input_path_is_refused_and_deletes_nothing(app, files):
    url, services, _ = app
    _run(Client(url, verbose=False), None, files["left"])  # someone's finished job, with results in the cache
    cached = next(services.uploads.folder.rglob("labels.nii.gz"))
    in_job = next(services.store.root.rglob("labels.nii.gz"))
    for forged in (cached, in_job):
        kind, stream = _call(url, [None, _file_data(forged)])
        assert kind == "error", stream[-500:]
        assert forged.is_file()
    assert "was not uploaded to this server" in _call(url, [None, _file_data(cached)])[1]
    assert httpx.get(f"{url}gradio_api/file={cached}", timeout=10).status_code == 200  # the owner's link works


# --- damaged and hostile files ---------------------------------------------------------------------------------
def _truncated(path: Path, target: Path, fraction: float = 0.9) -> Path:
    data = path.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def _dicom_zip(files, target: Path, damage) -> tuple[Path, list[str]]:
    """A zip of the image as a DICOM series with its middle slice damaged; and the names of that slice and its
    neighbours."""
    image = files["image"]
    slices = write_series(image.with_array(image.array.astype(np.uint16)), target.with_suffix(""))
    middle = len(slices) // 2
    damage(slices[middle])
    with zipfile.ZipFile(target, "w") as archive:
        for path in slices:
            archive.write(path, path.name)
    return target, [p.name for p in slices[middle - 1 : middle + 2]]


@pytest.mark.parametrize("kind", ["nii.gz", "nrrd", "dicom"])
def test_a_truncated_file_is_refused_naming_it(app, files, tmp_path, kind):
    client = Client(app[0], verbose=False)
    if kind == "dicom":
        cut, (_, named, _) = _dicom_zip(files, tmp_path / "series.zip", damage=lambda p: _truncated(p, p, 0.6))
    else:
        source = files["image_nii" if kind == "nii.gz" else "image_nrrd"]
        cut = _truncated(source, tmp_path / f"cut.{kind}")
        named = cut.name
    with pytest.raises(Exception, match="truncated") as info:
        _run(client, cut, files["left"])
    assert named in str(info.value)
    assert "/tmp" not in str(info.value) and "sitk::" not in str(info.value)


def _header_bomb(path: Path, side: int = 512) -> Path:
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape((side, side, side))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    zeros = bytes(side * side * 16)
    with gzip.open(path, "wb", compresslevel=6) as out:
        out.write(header.binaryblock + b"\0" * 4)
        for _ in range(side // 16):
            out.write(zeros)
    return path


def test_a_memory_bomb_is_refused_from_its_header_quickly(app, files, tmp_path):
    bomb = _header_bomb(tmp_path / "bomb.nii.gz")
    assert bomb.stat().st_size < 1_000_000  # 128 MiB of voxels in a few hundred kB
    client = Client(app[0], verbose=False)
    process, peak = psutil.Process(), [0]
    baseline = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    with pytest.raises(Exception, match=r"134 M voxels") as info:
        _run(client, bomb, files["left"])
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    assert "bomb.nii.gz" in str(info.value) and "at most 120 M" in str(info.value)
    assert elapsed < 2.0, f"refused after {elapsed:.2f} s"
    assert peak[0] - baseline < 200e6, f"memory grew by {(peak[0] - baseline) / 1e6:.0f} MB"


def test_empty_and_damaged_files_are_named_without_server_paths(app, files, tmp_path):
    client = Client(app[0], verbose=False)
    jobs_before = sorted(app[1].store.root.iterdir())
    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    with pytest.raises(Exception, match=r"empty\.nii\.gz: not a readable NIfTI file \(empty file\)") as info:
        _run(client, empty, files["left"])
    assert "sitk::" not in str(info.value) and str(tmp_path) not in str(info.value)

    def scramble_header(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[132:332] = os.urandom(200)
        path.write_bytes(bytes(data))

    damaged, (before, bad, after) = _dicom_zip(files, tmp_path / "damaged.zip", damage=scramble_header)
    with pytest.raises(Exception, match="DICOM") as info:
        _run(client, damaged, files["left"])
    message = str(info.value)
    assert bad in message or (before in message and after in message)  # the slice, or the gap it leaves
    assert "/tmp" not in message and "ITK" not in message and "itk::" not in message
    assert sorted(app[1].store.root.iterdir()) == jobs_before  # failed jobs leave no folder behind


def test_an_image_and_label_map_on_different_grids_are_explained(app, files):
    other_grid = phantom(side="left", spacing=(0.8, 0.8, 1.2)).labels
    labels = write_volume(other_grid, files["folder"] / "other_grid_labels.nrrd")
    with pytest.raises(Exception, match="does not lie on the image's voxel grid") as info:
        _run(Client(app[0], verbose=False), files["image_nii"], labels)
    assert "Image grid" in str(info.value) and "label grid" in str(info.value)


def test_a_label_map_of_the_other_knee_is_warned(app, files):
    """Left-knee image, right-knee label map on the same grid (the synthetic knees are mirror images)."""
    out = _run(Client(app[0], verbose=False), files["image_nii"], files["right"])
    assert "right knee" in out[STATUS]
    assert "looks mirrored left-right against the image" in out[11]  # the QC warnings


# --- cancel ----------------------------------------------------------------------------------------------------
def test_a_queued_job_cancelled_through_the_api_never_runs(app, files):
    url, services, engine = app
    options = ("canonical", NO_MODEL, False, "Automatic", 0.5, False)
    own = phantom(side="right", spacing=SMALL, tibial_mm=2.4).labels  # an upload no other session shares
    own_file = write_volume(own, files["folder"] / "queued_labels.nrrd")
    before = len(engine.started)
    engine.gate.clear()  # the first job holds the lane until the gate opens
    try:
        first = Client(url, verbose=False).submit(None, handle_file(str(files["left"])), *options, api_name="/run")
        deadline = time.time() + 60
        while len(engine.started) == before and time.time() < deadline:
            time.sleep(0.1)
        waiting = Client(url, verbose=False)
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
    assert not list(services.uploads.folder.rglob("queued_labels.nrrd"))  # and its upload is gone


def test_a_workdir_outside_the_temp_dir_and_the_working_directory_is_allowed(tmp_path, monkeypatch):
    """As under systemd (/var/lib/kneescope/work) or Docker (/work): Gradio takes returned files only from the
    working directory, the temp dir or allowed_paths (platform notes §7), so there the jobs folder is allowed. Checked
    by hand: without it every job of such an app ends in "Unexpected InvalidPathError"."""
    import tempfile

    from app.main import job_folders_to_allow

    for folder in ("temp", "cwd", "work/jobs"):
        (tmp_path / folder).mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    monkeypatch.chdir(tmp_path / "cwd")
    assert job_folders_to_allow(tmp_path / "work" / "jobs") == [str(tmp_path / "work" / "jobs")]
    assert job_folders_to_allow(tmp_path / "temp" / "jobs") is None
    assert job_folders_to_allow(tmp_path / "cwd" / "jobs") is None


# --- retention -------------------------------------------------------------------------------------------------
def test_files_older_than_the_retention_are_removed_at_startup(tmp_path, monkeypatch):
    from app.settings import AppSettings
    from app.startup import build_services

    workdir, gradio = tmp_path / "work", tmp_path / "gradio-cache"
    old, fresh = time.time() - 30 * 3600, time.time() - 3600
    planted = {
        "old_job": workdir / "jobs" / ("a" * 22) / "results" / "results.json",
        "fresh_job": workdir / "jobs" / ("b" * 22) / "results" / "results.json",
        "old_upload": gradio / ("c" * 40) / "knee.nii.gz",
        "fresh_upload": gradio / ("d" * 40) / "knee.nii.gz",
    }
    for name, path in planted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
        stamp = old if name.startswith("old") else fresh
        for touched in (path, path.parent, path.parent.parent):
            os.utime(touched, (stamp, stamp))
    empty_job = workdir / "jobs" / ("e" * 22)
    empty_job.mkdir()
    temp = tmp_path / "temp"
    crashed_unzip = temp / "kneescope-unzip-abc" / "IM0001.dcm"
    crashed_unzip.parent.mkdir(parents=True)
    crashed_unzip.write_text("left by a crash")
    for touched in (crashed_unzip, crashed_unzip.parent):
        os.utime(touched, (old, old))
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(gradio))
    build_services(AppSettings(workdir=workdir, retention_hours=24), engine=Engine())
    assert not planted["old_job"].exists() and not planted["old_upload"].exists()
    assert planted["fresh_job"].exists() and planted["fresh_upload"].exists()
    assert not empty_job.exists()
    assert not (gradio / ("c" * 40)).exists()
    assert not crashed_unzip.parent.exists()
