"""Launch options: the jobs folder allowed to Gradio wherever the workdir lies (app/main.py)."""

from __future__ import annotations


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
