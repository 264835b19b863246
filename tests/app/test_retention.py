"""Retention across restarts: old jobs, uploads and crashed unzips removed at startup (app/retention.py)."""

from __future__ import annotations

import os
import time

from pipeline.engine import Engine


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
