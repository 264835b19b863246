"""The retention's disk bound counts Gradio's cache as well as the job folders, and keeps free space (issue 25,
item 7). The free space is a patched probe: a "disk" of fixed capacity holding exactly the files under the test's
folder (measured by walking it, independently of the code under test)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.jobs import JobStore
from app.retention import RetentionPolicy, make_room
from app.uploads import UploadRegistry
from pipeline import diskspace

KB = 1000


def _entry(path: Path, size: int, age_h: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    stamp = time.time() - age_h * 3600
    for touched in (path, path.parent, path.parent.parent):  # the file, its folder, the job folder
        os.utime(touched, (stamp, stamp))
    return path


@pytest.fixture
def server(tmp_path):
    """Jobs and Gradio entries, oldest first: job a (5 h), upload b (4 h, in use), job c (3 h, running), cached d
    (2 h), job e (1 h); 100 kB each."""
    store = JobStore(tmp_path / "work")
    gradio = tmp_path / "work" / "gradio"
    running = store.create("someone")
    files = {
        "a": _entry(store.root / ("a" * 22) / "results" / "results.json", 100 * KB, 5),
        "b": _entry(gradio / ("b" * 64) / "knee.nii.gz", 100 * KB, 4),
        "c": _entry(running.folder / "results" / "labels.nii.gz", 100 * KB, 3),
        "d": _entry(gradio / ("d" * 64) / "axial.png", 100 * KB, 2),
        "e": _entry(store.root / ("e" * 22) / "results" / "results.json", 100 * KB, 1),
    }
    uploads = UploadRegistry(gradio, uploaded={str(files["b"])})
    assert uploads.claim("another", str(files["b"]))
    return store, gradio, uploads, files


def _left(files: dict[str, Path]) -> str:
    return "".join(name for name, path in files.items() if path.exists())


def test_the_bound_counts_gradios_cache_oldest_first_sparing_running_jobs_and_uploads_in_use(server):
    store, gradio, uploads, files = server
    make_room(store, gradio, RetentionPolicy(max_age_s=1e9, max_bytes=300 * KB), uploads)
    assert _left(files) == "bce"  # a, then d (b and c may not go): 300 kB left
    make_room(store, gradio, RetentionPolicy(max_age_s=1e9, max_bytes=250 * KB), uploads)
    assert _left(files) == "bc"  # over the bound with only what may not go left
    make_room(store, gradio, RetentionPolicy(max_age_s=1e9, max_bytes=1e9), uploads)
    assert _left(files) == "bc"


def test_the_oldest_go_until_the_disk_keeps_its_free_space(server, monkeypatch, tmp_path):
    store, gradio, uploads, files = server
    capacity = 700 * KB

    def free(path) -> int:  # the test's "disk": its capacity less the files under tmp_path
        used = sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file())
        return capacity - used

    monkeypatch.setattr(diskspace, "free_bytes", free)
    assert free(tmp_path) == 200 * KB
    make_room(store, gradio, RetentionPolicy(max_age_s=1e9, max_bytes=1e9, min_free_bytes=300 * KB), uploads)
    assert _left(files) == "bcde"  # a freed enough: 300 kB free
    make_room(store, gradio, RetentionPolicy(max_age_s=1e9, max_bytes=1e9, min_free_bytes=400 * KB), uploads)
    assert _left(files) == "bce"  # then the oldest Gradio entry
    make_room(store, gradio, RetentionPolicy(max_age_s=1e9, max_bytes=1e9, min_free_bytes=690 * KB), uploads)
    assert _left(files) == "bc"  # what is running or in use stays, even short of space
