"""`batch` defects found at scale (issue 24) and the OUT folder lock and manifest checks (issue 25, item 8).

* status says what a case is (ok/failed) and the ``run`` column when it ran (this/earlier);
* a run in which no case starts records no options, so the folder is not refused later;
* without a segmentation model only the MRI rows fail (error kind 'model', exit 3); label-map rows run;
* a second run on a folder in use is refused; a lock left by a killed run is taken over;
* every manifest problem is reported at once, a row with the wrong number of cells included.

Local engine, one coarse synthetic label map: each run that analyses takes a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from tests.fixtures import REPO

ROOT = REPO


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """seg.nrrd (a coarse synthetic label map) and mri.nii.gz (a small image that would need segmenting)."""
    from pipeline.io import write_volume
    from pipeline.synthetic import PhantomSpec, make_phantom
    from pipeline.volume import Volume

    folder = tmp_path_factory.mktemp("batch_inputs")
    write_volume(make_phantom(PhantomSpec(side="right", spacing=(0.6, 0.6, 1.2))).labels, folder / "seg.nrrd")
    noise = np.random.default_rng(1).normal(100, 10, (24, 24, 24)).astype(np.float32)
    write_volume(Volume(noise, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3)), folder / "mri.nii.gz")
    (folder / "mri_only.csv").write_text("case_id,image,labels\nmri,mri.nii.gz,\n")
    (folder / "both.csv").write_text("case_id,image,labels\nmri,mri.nii.gz,\nseg,,seg.nrrd\n")
    (folder / "no_model").mkdir()  # a --model-dir without any model: no weights here, whatever the network
    return folder


def batch(inputs: Path, manifest: str, out: Path, *extra: str) -> int:
    no_model = ["--model-dir", str(inputs / "no_model")]
    return main(["batch", str(inputs / manifest), "--out", str(out), "-q", *no_model, *extra])


def test_without_a_model_only_mri_rows_fail_and_options_wait_for_a_case(inputs, tmp_path, capsys):
    out = tmp_path / "OUT"
    # No case can start: the MRI row fails for want of a model, and the folder records no options.
    assert batch(inputs, "mri_only.csv", out, "--t2", "off") == 3
    assert not (out / "cohort_options.json").exists()
    first = pd.read_csv(out / "cohort.csv")
    assert first.loc[0, "status"] == "failed" and first.loc[0, "error_kind"] == "model"
    assert "No nnU-Net model folder" in first.loc[0, "error"]
    assert "FAILED mri: No nnU-Net model folder" in capsys.readouterr().out
    # Other options are therefore accepted; the label-map row runs without a model, the MRI row's failure stands.
    assert batch(inputs, "both.csv", out, "--t2", "auto") == 3
    table = pd.read_csv(out / "cohort.csv")
    assert list(table["status"]) == ["failed", "ok"] and list(table["run"]) == ["earlier", "this"]
    assert abs(table.loc[1, "femoral_thickness_mean_mm"] - 2.0) < 0.1
    assert json.loads((out / "cohort_options.json").read_text())["t2"] is None  # recorded when 'seg' started
    # Run again: status still says what each case is; run says it was done earlier.
    assert batch(inputs, "both.csv", out, "--t2", "auto") == 3
    table = pd.read_csv(out / "cohort.csv")
    assert list(table["status"]) == ["failed", "ok"] and list(table["run"]) == ["earlier", "earlier"]
    assert json.loads((out / "cohort.json").read_text())["counts"] == {
        "cases": 2, "ok": 1, "failed": 1, "this_run": 0, "earlier": 2
    }  # fmt: skip
    capsys.readouterr()
    # Now the folder holds a case analysed with t2=auto: other options are refused.
    assert batch(inputs, "both.csv", out, "--t2", "off") == 2
    assert "holds cases analysed with other options (t2: None then, False now)" in capsys.readouterr().err


HOLD = """
import sys, time
from pathlib import Path
from pipeline.cohort.lock import folder_lock
with folder_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(300)
"""


def test_second_run_refused_while_the_first_holds_the_folder_then_a_stale_lock_is_taken_over(inputs, tmp_path, capsys):
    out = tmp_path / "OUT"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert batch(inputs, "both.csv", out) == 2
        err = capsys.readouterr().err
        assert f"is in use by another batch run (pid {holder.pid} on " in err and "Traceback" not in err
        assert sorted(p.name for p in out.iterdir()) == ["batch.lock"]  # nothing else written
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the lock file keeps its record, the flock dies with it
        holder.wait(timeout=60)
    assert json.loads((out / "batch.lock").read_text())["pid"] == holder.pid
    assert batch(inputs, "mri_only.csv", out) == 3  # the run goes through (its MRI row fails for want of a model)
    err = capsys.readouterr().err
    assert f"the run that held it (pid {holder.pid} on " in err and "takes it over" in err
    assert (out / "batch.lock").read_text() == ""  # released cleanly
    assert list(pd.read_csv(out / "cohort.csv")["error_kind"]) == ["model"]


def test_every_manifest_problem_reported_at_once(tmp_path, capsys):
    manifest = tmp_path / "MANIFEST.csv"
    manifest.write_text(
        "subject_id,visit,date,labels,group\n"
        "S1,V00,2020-01-05,a.nii.gz,A\n"
        "S1,V12,2021-01-05,b.nii.gz\n"  # a cell short
        "S1,V00,2022-01-05,c.nii.gz,A\n"  # the same visit twice
        "S2,V00,05/01/2020,d.nii.gz,B\n"  # not an ISO date
        "S2,V12,,e.nii.gz,B\n"  # dated and undated visits of one subject
        "S3,V00,2020-02-01,f.nii.gz,A\n"
        "S3,V12,2021-02-01,g.nii.gz,B\n"  # the group changes
        "S4/x,V00,2020-02-01,h.nii.gz,A,extra\n"  # a cell too many
    )
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--longitudinal", "-q"]) == 2
    err = capsys.readouterr().err
    for expected in (
        "MANIFEST.csv: 7 problem(s)",
        "line 3: 4 cells, but the header has 5",
        "line 4: duplicate case_id 'S1_V00' (first on line 2)",
        "line 4: subject S1 has visit V00 twice (first on line 2)",
        "line 5: date '05/01/2020' is not a date; write it as YYYY-MM-DD",
        "line 6: subject S2 has visits with a date and without one (V12)",
        "line 7: subject S3 has more than one group (A, B)",
        "line 9: 6 cells, but the header has 5",
    ):
        assert expected in err, expected
    assert err.index("line 3:") < err.index("line 4:") < err.index("line 9:")  # in line order
    assert not (tmp_path / "out").exists()


def test_longitudinal_needs_subject_and_visit_and_pairs_needs_longitudinal(tmp_path, capsys):
    manifest = tmp_path / "MANIFEST.csv"
    manifest.write_text("case_id,labels\na,a.nii.gz\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--longitudinal", "-q"]) == 2
    assert "--longitudinal needs the columns subject_id and visit (missing: subject_id, visit" in (
        capsys.readouterr().err
    )
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--pairs", "consecutive", "-q"]) == 2
    assert "--pairs needs --longitudinal" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
