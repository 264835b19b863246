"""A full disk said as such, before work that cannot be kept and when it fills while writing (issue 25, item 7):
the result writers, the CLI and batch. A real small disk (tmpfs) where a write must really fail; a patched
free-space probe where only the check matters."""

from __future__ import annotations

import errno

import pytest

from pipeline import diskspace
from pipeline.errors import DiskFullError
from pipeline.io import write_volume
from tests.fixtures.disk import MB, fill, pretend_free, small_disk
from tests.fixtures.knees import analysed, phantom

SMALL = (0.8, 0.8, 1.0)
SENTENCE = "The disk is full:"


@pytest.fixture(scope="module")
def result():
    return analysed(side="left", spacing=SMALL)


def test_an_enospc_write_and_a_writer_without_an_errno_become_one_sentence(tmp_path, monkeypatch):
    with pytest.raises(DiskFullError, match=r"^The disk is full: the results could not be written to out") as info:
        with diskspace.disk_full_named(tmp_path / "out"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(info.value.__cause__, OSError)
    pretend_free(monkeypatch, tmp_path, 1 * MB)  # pyvista's "VTK writer failed" carries no errno
    with pytest.raises(DiskFullError, match=r"\(1 MB free\)"):
        with diskspace.disk_full_named(tmp_path / "out"):
            raise OSError("VTK writer failed to write file: out/meshes/femur.vtk")
    pretend_free(monkeypatch, tmp_path, 10_000 * MB)
    with pytest.raises(OSError, match="VTK writer failed") as info:  # with room to spare it is some other fault
        with diskspace.disk_full_named(tmp_path / "out"):
            raise OSError("VTK writer failed to write file: out/meshes/femur.vtk")
    assert not isinstance(info.value, DiskFullError)


def test_results_that_cannot_fit_are_refused_before_a_byte_is_written(result, tmp_path, monkeypatch):
    pretend_free(monkeypatch, tmp_path, 5 * MB)
    out = tmp_path / "out"
    with pytest.raises(DiskFullError, match=r"could not be written to out \(5 MB free, about \d+ MB needed\)"):
        result.write(out)
    assert not out.exists()


def test_results_refused_on_a_real_small_disk(result, tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        fill(disk, 4 * MB)
        with pytest.raises(DiskFullError, match=SENTENCE):
            result.write(disk / "out")
        assert not (disk / "out").exists()


def test_a_disk_that_fills_up_while_writing_is_named(result, tmp_path, monkeypatch):
    """The size check passed (patched to 0 bytes needed): the writers really run out of room on a tmpfs."""
    monkeypatch.setattr(diskspace, "results_bytes", lambda voxels: 0)
    with small_disk(tmp_path / "disk") as disk:
        fill(disk, 300 * 1024)
        with pytest.raises(DiskFullError, match=SENTENCE) as info:
            result.write(disk / "out")
        assert isinstance(info.value.__cause__, OSError)


def test_the_cli_says_the_disk_is_full_before_analysing(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    labels = write_volume(phantom(side="left", spacing=SMALL).labels, tmp_path / "knee_labels.nrrd")
    pretend_free(monkeypatch, tmp_path / "out", 2 * MB)
    assert main(["analyze", "--labels", str(labels), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The disk is full: the results could not be written to out (2 MB free, about")
    assert "Traceback" not in err


def test_the_cli_names_a_full_disk_met_outside_the_result_writers(tmp_path, monkeypatch, capsys):
    from pipeline import cli

    def analyse_on_a_full_disk(args):
        raise OSError(errno.ENOSPC, "No space left on device", "out/cohort.csv")

    monkeypatch.setattr(cli.analyze, "run", analyse_on_a_full_disk)
    assert cli.main(["analyze", "--labels", "x.nrrd", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: The disk is full: the output could not be written")


def test_batch_records_a_full_disk_in_one_sentence(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    labels = write_volume(phantom(side="left", spacing=SMALL).labels, tmp_path / "knee_labels.nrrd")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"case_id,labels\nknee,{labels}\n")
    out = tmp_path / "cohort"
    pretend_free(monkeypatch, out / "cases", 10 * MB)  # room for the cohort's own records, not for a case
    assert main(["batch", str(manifest), "--out", str(out), "--engine", "local", "-q"]) == 3
    printed = capsys.readouterr().out
    assert "FAILED knee: The disk is full: the case's results could not be written to" in printed
    assert "OSError" not in printed
