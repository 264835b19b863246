"""Cohort runs (`python -m pipeline batch`): manifests, Ray and local engines, resuming, a killed worker, the table.

The cohort: six synthetic label maps of known thickness (both sides, one in the native scheme, one knee with much
thicker cartilage that the QC page must flag) and two bad cases (a float label map, a missing file). Phantoms are
coarse (0.6 x 0.6 x 1.2 mm) to keep the runs short; thickness still comes within 0.06 mm of the truth there.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import labels as L
from pipeline.cli import main
from pipeline.cohort import ManifestError, read_manifest, run_cohort
from pipeline.cohort.runner import KILL_ONCE_ENV
from pipeline.errors import KneePipelineError
from pipeline.request import AnalysisRequest
from tests.fixtures import REPO

ROOT = REPO
SPACING = (0.6, 0.6, 1.2)
#: case_id -> (side, femoral, tibial, patellar mm, label scheme written)
KNEES = {
    "oai_r1": ("right", 2.0, 2.4, 2.6, "canonical"),
    "oai_l1": ("left", 2.2, 2.0, 2.8, "canonical"),
    "oai_r2": ("right", 1.9, 2.2, 2.4, "native"),
    "oai_l2": ("left", 2.0, 2.6, 2.5, "canonical"),
    "oai_r3": ("right", 2.1, 2.3, 2.7, "canonical"),
    "oai_thick": ("left", 3.5, 3.4, 3.6, "canonical"),
}
BAD = ("bad_float", "bad_missing")
REGIONS = ("femoral", "medial_tibial", "lateral_tibial", "patellar")
TOLERANCE_MM = 0.1


def _has_ray() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """MANIFEST.csv and its label maps; returns the manifest path."""
    from pipeline.io import write_volume
    from pipeline.synthetic import PhantomSpec, make_phantom

    folder = tmp_path_factory.mktemp("cohort")
    rows = ["case_id,labels,label_scheme,subject,visit,side"]
    native = np.zeros(16, np.uint8)
    for name, value in L.CANONICAL.items():
        native[value] = L.NATIVE[name]
    for number, (case_id, (side, femoral, tibial, patellar, scheme)) in enumerate(KNEES.items()):
        spec = PhantomSpec(side=side, femoral_mm=femoral, tibial_mm=tibial, patellar_mm=patellar, spacing=SPACING)
        labels = make_phantom(spec).labels
        if scheme == "native":
            labels = labels.with_array(native[labels.array])
        write_volume(labels, folder / "labels" / f"{case_id}.nii.gz")
        rows.append(
            f"{case_id},labels/{case_id}.nii.gz,{'native' if scheme == 'native' else ''},S{number:03d},V00,{side}"
        )
    write_volume(labels.with_array(labels.array.astype(np.float32) * 0.5), folder / "labels" / "bad_float.nii.gz")
    rows += ["bad_float,labels/bad_float.nii.gz,,S100,V01,left", "bad_missing,labels/not_there.nii.gz,,S101,V01,right"]
    manifest = folder / "MANIFEST.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def _truth(case_id: str) -> dict[str, float]:
    _, femoral, tibial, patellar, _ = KNEES[case_id]
    return {"femoral": femoral, "medial_tibial": tibial, "lateral_tibial": tibial, "patellar": patellar}


def check_first_run(table: pd.DataFrame) -> None:
    """Six ok rows within 0.1 mm of the truth, in manifest order, with the manifest's columns; two specific failures."""
    assert list(table["case_id"]) == [*KNEES, *BAD]
    assert list(table.columns[:6]) == ["case_id", "labels", "label_scheme", "subject", "visit", "side"]
    ok = table.set_index("case_id").loc[list(KNEES)]
    assert (ok["status"] == "ok").all() and (ok["seconds"] > 0).all()
    for case_id, row in ok.iterrows():
        for region, truth in _truth(str(case_id)).items():
            assert abs(row[f"{region}_thickness_mean_mm"] - truth) <= TOLERANCE_MM, (case_id, region)
        assert row["laterality"] == row["side"]
    bad = table.set_index("case_id").loc[list(BAD)]
    assert (bad["status"] == "failed").all() and (bad["error_kind"] == "input").all()
    assert "holds non-integer values" in bad.loc["bad_float", "error"]
    assert "not_there.nii.gz: label map not found" in bad.loc["bad_missing", "error"]
    assert bad["femoral_thickness_mean_mm"].isna().all()


def result_columns(table: pd.DataFrame) -> pd.DataFrame:
    columns = list(table.columns[table.columns.get_loc("laterality") :])
    return table.set_index("case_id").loc[list(KNEES), columns]


# --- Ray, real CLI processes: a first run with a worker killed mid-case, a resumed run, a retry ------------------
@pytest.fixture(scope="module")
def ray_cli_runs(cohort, tmp_path_factory):
    """Three runs of the same command: (seconds, stdout + stderr, cohort.parquet, cohort.json) each."""
    if not _has_ray():
        pytest.skip("ray is not installed")
    out = tmp_path_factory.mktemp("ray_out") / "OUT"
    marker = out.parent / "killed"
    env = {**os.environ, KILL_ONCE_ENV: str(marker), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pipeline", "batch", str(cohort), "--out", str(out), "--engine", "ray"]
    runs = []
    for extra in (["--workers", "2"], [], ["--retry-failed"]):
        start = time.perf_counter()
        proc = subprocess.run([*command, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        seconds = time.perf_counter() - start
        assert proc.returncode == 3, proc.stderr[-3000:]
        record = json.loads((out / "cohort.json").read_text())
        runs.append((seconds, proc.stdout + proc.stderr, pd.read_parquet(out / "cohort.parquet"), record))
    return out, marker, runs


def test_killed_worker_every_case_once_and_quiet_terminal(ray_cli_runs):
    out, marker, [(_, terminal, table, _), *_] = ray_cli_runs
    assert marker.is_file(), "the test hook never killed a worker"
    check_first_run(table)
    done = {p.parent.name: json.loads(p.read_text()) for p in (out / "cases").glob("*/done.json")}
    assert sorted(done) == sorted(KNEES)
    assert sorted(d["interrupted_attempts"] for d in done.values()) == [0] * 5 + [1]  # the killed case, re-run once
    assert not (out / "cases" / ".partial").exists()
    assert "FAILED bad_missing" in terminal
    for noise in ("Token authentication", "(raylet)", "worker died", "Traceback"):  # Ray's messages go to batch.log
        assert noise not in terminal, noise
    assert "Started a local Ray instance" in (out / "batch.log").read_text()


def test_ray_first_run_table_record_and_report(ray_cli_runs):
    out, _, [(_, _, table, record), *_] = ray_cli_runs
    csv = pd.read_csv(out / "cohort.csv")  # the last run's: the same numbers
    assert np.allclose(csv["femoral_thickness_mean_mm"], table["femoral_thickness_mean_mm"], equal_nan=True)
    assert record["counts"] == {"cases": 8, "ok": 6, "failed": 2, "this_run": 8, "earlier": 0}  # killed case once
    assert record["engine"]["name"] == "ray" and record["engine"]["version"]
    assert record["model"]["segmented_cases"] == 0  # labels only: no model loaded (fullres is not even available)
    report = (out / "cohort_report.html").read_text()
    flagged = report.split("<h2>Flagged cases</h2>")[1].split("<h2>")[0].split("<tr>")[2:]
    outliers = [row.split("'")[1] for row in flagged if "MAD from the median" in row]
    assert outliers == ["cases/oai_thick/"]  # 3.5 mm among ~2 mm knees; the others lie within 3 MAD
    assert "bad_float" in report.split("<h2>Failed cases</h2>")[1]


def test_ray_second_run_skips_done_cases(ray_cli_runs, local_run):
    _, _, [(first_s, _, first, _), (second_s, _, second, record), (_, _, retried, _)] = ray_cli_runs
    # Also against the local run (no Ray start-up, no killed worker): the stricter baseline.
    assert second_s < 0.4 * first_s and second_s < 0.4 * local_run[2], (second_s, first_s, local_run[2])
    assert list(second["status"]) == ["ok"] * 6 + ["failed"] * 2  # what each case is, not when it ran
    assert list(second["run"]) == ["earlier"] * 8
    assert result_columns(second).equals(result_columns(first))  # rows re-read from the done records
    assert list(second["error"][6:]) == list(first["error"][6:])  # failures stand without --retry-failed
    assert record["counts"] == {"cases": 8, "ok": 6, "failed": 2, "this_run": 0, "earlier": 8}
    assert list(retried["status"]) == ["ok"] * 6 + ["failed"] * 2
    assert list(retried["run"]) == ["earlier"] * 6 + ["this"] * 2  # the failed ones ran again


@pytest.fixture(scope="module")
def local_run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("local_out")
    start = time.perf_counter()
    table = run_cohort(cohort, out, engine="local", progress=False)
    return out, table, time.perf_counter() - start


def test_local_engine_gives_identical_numbers(ray_cli_runs, local_run):
    _, _, [(_, _, ray_table, _), *_] = ray_cli_runs
    _, table, _ = local_run
    check_first_run(table)
    pd.testing.assert_frame_equal(result_columns(table), result_columns(ray_table))
    assert table.attrs["cohort"]["engine"]["name"] == "local"


@pytest.fixture
def ray_session():
    ray = pytest.importorskip("ray")
    # A logical GPU: the segmentation pool's num_gpus scheduling runs here as on a GPU node (the model on the CPU).
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_segments_mri_on_a_gpu_pool_and_labels_on_another(ray_session, tmp_path):
    """A mixed cohort: one MRI (demo model, on the 'GPU' pool) and one label map (no model)."""
    from pipeline.config import InferenceOptions
    from pipeline.engine_spec import EngineSpec
    from pipeline.io import write_volume
    from pipeline.synthetic import PhantomSpec, make_phantom, render_mr

    knee = make_phantom(PhantomSpec(side="right", spacing=(0.8, 0.8, 1.0)))
    write_volume(render_mr(knee.labels, seed=3), tmp_path / "mri.nrrd")
    write_volume(knee.labels, tmp_path / "seg.nrrd")
    (tmp_path / "m.csv").write_text("case_id,image,labels\nmri,mri.nrrd,\nseg,,seg.nrrd\n")
    run = functools.partial(run_cohort, tmp_path / "m.csv", tmp_path / "out", engine="ray", progress=False)
    # No segmenting worker can start (no CUDA here): the MRI fails with the reason, the label map still runs.
    first = run(engine_spec=EngineSpec("demo", inference=InferenceOptions(device="cuda")))
    assert list(first["status"]) == ["failed", "ok"]
    assert first.loc[0, "error"] == (
        "no segmentation worker could start: KneePipelineError: Device 'cuda' is not available on this machine; "
        "use --device auto or cpu."
    )
    table = run(engine_spec=EngineSpec("demo"), retry_failed=True)
    assert list(table["status"]) == ["ok", "ok"] and list(table["run"]) == ["this", "earlier"]
    engine = table.attrs["cohort"]["engine"]
    assert engine["workers"] == {"segmentation": 1, "labels_only": 0} and engine["gpus_per_worker"] == 1.0
    assert table.attrs["cohort"]["model"]["used"] == [{"device": "cpu", "engine_model": "demo", "model": "demo",
                                                        "revision": "bundled"}]  # fmt: skip
    assert table["segmentation_seconds"].notna().tolist() == [True, False]
    assert abs(table.loc[0, "femoral_thickness_mean_mm"] - 2.0) <= 0.4  # the demo model's accuracy (test_segment)


# --- manifests, resuming rules (no Ray) ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,labels\na,x.nii.gz\n", "no 'case_id' column"),
        ("case_id,subject\na,1\n", "needs an 'image' or a 'labels' column"),
        ("case_id,labels\na,x.nii.gz\nb,y.nii.gz\nA,z.nii.gz\n", "line 4: duplicate case_id 'A' (first on line 2)"),
        ("case_id,labels\nknee/1,x.nii.gz\n", "line 2: case_id 'knee/1' cannot name a folder"),
        ("case_id,image,labels\na,,\n", "line 2: case a has neither an image nor labels"),
        ("case_id,labels\na,x.nii.gz,extra\n", "line 2: 3 cells, but the header has 2"),
        ("case_id,labels,status\na,x.nii.gz,1\n", "'status' is reserved"),
        (b"case_id,labels\n\xff\xfe,x\n", "not UTF-8 text"),
    ],
)
def test_bad_manifest_exits_2_with_a_specific_message(tmp_path, capsys, text, message):
    manifest = tmp_path / "MANIFEST.csv"
    manifest.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "2"], "need --engine ray"),
        (["--engine", "ray", "--workers", "0"], "--workers must be at least 1"),
        (["--engine", "ray", "--ray-address", "headnode"], "expected HOST:PORT"),
    ],
)
def test_bad_arguments_exit_2_before_anything_is_written(cohort, tmp_path, capsys, args, message):
    assert main(["batch", str(cohort), "--out", str(tmp_path / "out"), "-q", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_semicolons_bom_and_relative_paths(tmp_path):
    (tmp_path / "MANIFEST.csv").write_text("\ufeffCase_ID;labels;visit\nk1;seg/k1.nrrd;V00\n")
    case = read_manifest(tmp_path / "MANIFEST.csv").cases[0]
    assert case.case_id == "k1" and case.labels == tmp_path / "seg" / "k1.nrrd" and case.cells["visit"] == "V00"


def test_folder_manifest_one_case_per_image(tmp_path):
    for name in ("a.nii.gz", "sub/b.nrrd", "notes.txt", ".hidden.nii.gz"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    zipfile.ZipFile(tmp_path / "c.zip", "w").close()
    (tmp_path / "series 1").mkdir()
    (tmp_path / "series 1" / "IM0001").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)
    manifest = read_manifest(tmp_path)
    assert [c.case_id for c in manifest.cases] == ["a", "c", "series_1", "sub_b"]
    assert all(c.needs_segmentation for c in manifest.cases)
    (tmp_path / "IM0002").write_bytes(b"\0" * 128 + b"DICM")
    with pytest.raises(ManifestError, match="loose DICOM files"):
        read_manifest(tmp_path)


def test_resume_rules_local(cohort, local_run, tmp_path):
    """A renamed folder without its done marker re-runs; a changed manifest row re-runs; other options are refused."""
    out = tmp_path / "out"
    shutil.copytree(local_run[0], out)
    (out / "cases" / "oai_r1" / "done.json").unlink()  # as if killed between the rename and the marker
    statuses, runs = ["ok"] * 6 + ["failed"] * 2, ["this", *["earlier"] * 7]
    table = run_cohort(cohort, out, progress=False)
    assert list(table["status"]) == statuses and list(table["run"]) == runs
    changed = cohort.with_name("MANIFEST_changed.csv")
    changed.write_text(cohort.read_text().replace("labels/oai_r1.nii.gz", "labels/oai_thick.nii.gz"))
    table = run_cohort(changed, out, progress=False)
    assert list(table["status"]) == statuses and list(table["run"]) == runs
    assert abs(table.loc[0, "femoral_thickness_mean_mm"] - KNEES["oai_thick"][1]) <= TOLERANCE_MM
    with pytest.raises(KneePipelineError, match="holds cases analysed with other options"):
        run_cohort(cohort, out, request=AnalysisRequest(t2=False), progress=False)


def test_unreachable_ray_address_fails_fast():
    from pipeline.cohort.ray_executor import _check_reachable

    start = time.perf_counter()
    with pytest.raises(KneePipelineError, match=r"Cannot reach the Ray head at 127.0.0.1:1 \(Connection refused\)"):
        _check_reachable("127.0.0.1:1")
    with pytest.raises(KneePipelineError, match="expected HOST:PORT"):
        _check_reachable("headnode")
    assert time.perf_counter() - start < 10  # Ray itself would retry such an address for many minutes


def test_kuberay_manifest_matches_the_pinned_ray():
    import re

    import yaml

    pin = re.search(r"^ray\[data\]==([\d.]+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    cluster = yaml.safe_load((ROOT / "deploy" / "ray" / "raycluster.yaml").read_text())
    assert (cluster["apiVersion"], cluster["kind"], cluster["spec"]["rayVersion"]) == ("ray.io/v1", "RayCluster", pin)
    assert f'"ray[default]=={pin}"' in (ROOT / "deploy" / "ray" / "Dockerfile").read_text()
    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # the head takes no case
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    for pod in [head, *groups.values()]:
        container = pod["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["KNEESCOPE_WEIGHTS_DIR"] == "/weights" and env["HF_HUB_OFFLINE"] == "1"  # one shared cache
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["weights"]["readOnly"] and mounts["cohort"]["mountPath"] == "/cohort"
        assert all(isinstance(v, str) for v in pod["rayStartParams"].values())
