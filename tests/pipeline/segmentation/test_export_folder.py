"""Where the exported graphs and the backend measurement are cached: never inside the source tree (the bundled demo
weights in weights/demo must stay as checked out), beside other weights when writable, else the user's cache."""

from __future__ import annotations

from pathlib import Path

from pipeline.segmentation.backends.export import EXPORT_DIR_ENV, FOLDER_NAME, SOURCE_TREE, export_folder


def test_bundled_weights_are_not_written_beside(monkeypatch, tmp_path):
    monkeypatch.delenv(EXPORT_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    checkpoints = sorted((SOURCE_TREE / "weights" / "demo").rglob("*.pth"))
    assert checkpoints, "the bundled demo model's checkpoint"
    assert export_folder(checkpoints[0]) == tmp_path / "cache" / "kneescope" / "export"


def test_weights_elsewhere_keep_their_graphs_beside_them(monkeypatch, tmp_path):
    monkeypatch.delenv(EXPORT_DIR_ENV, raising=False)
    checkpoint = tmp_path / "fold_0" / "checkpoint_final.pth"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    assert export_folder(checkpoint) == checkpoint.parent / FOLDER_NAME
    monkeypatch.setenv(EXPORT_DIR_ENV, str(tmp_path / "shared"))
    assert export_folder(checkpoint) == Path(tmp_path / "shared")
