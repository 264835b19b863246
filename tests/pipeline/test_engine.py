"""One analysis path: the CLI, the app and Python callers all run Engine.analyze and get the same numbers.

The synthetic qDESS series (`python -m pipeline synth --qdess`) goes through the real command line in a subprocess and
through the app over HTTP (gradio_client), both segmented by the bundled demo model; T2 must come out within 10 %
of the truth the generator wrote, the shape-model section must name the missing weights, and both results.json files
must carry the same numbers. The series is generated with the qDESS signal model that pipeline.t2 inverts, so this
checks the plumbing (DICOM -> echoes -> segmentation -> regional T2), not the physics
(tests/pipeline/t2/test_qdess.py and bench/t2_vs_dosma.py do that independently).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.fixtures import REPO

ROOT = REPO
T2_TOLERANCE = 0.10


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    weights = tmp_path_factory.mktemp("empty-weights-cache")  # no shape-model weights here, by design
    return {**os.environ, "KNEESCOPE_WEIGHTS_DIR": str(weights), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def qdess(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("qdess-example")
    subprocess.run(
        [sys.executable, "-m", "pipeline", "synth", "--out", str(out), "--qdess"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


@pytest.fixture(scope="module")
def cli_run(qdess, env, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-out")
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "analyze",
        str(qdess / "qdess"),
        "--out",
        str(out),
        "--model",
        "fullres",  # not installed here: the demo model stands in, with one notice
        "--t2",
        "on",
        "--shape-model",
        "--device",
        "cpu",
        "-q",
    ]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "results.json").read_text()), proc


def test_cli_computes_t2_of_a_qdess_series_within_10_percent(cli_run, qdess):
    results, _ = cli_run
    truth = json.loads((qdess / "t2_truth.json").read_text())["regions"]
    t2 = results["t2"]
    assert t2["computed"] is True and t2["method"] == "spoiled"
    for region, true_ms in truth.items():
        assert t2["regions"][region]["mean"] == pytest.approx(true_ms, rel=T2_TOLERANCE), region


def test_cli_says_once_that_the_demo_model_stands_in(cli_run):
    _, proc = cli_run
    assert proc.stderr.count("Using the DEMO model instead") == 1, proc.stderr
    assert proc.stderr.count("Measuring which CPU backend") <= 1  # said when it measures; cached afterwards


def test_cli_names_the_missing_shape_model_weights(cli_run):
    results, proc = cli_run
    section = results["shape_model"]
    assert section["computed"] is False
    assert "nsm_647" in section["reason"] and "not in the local cache" in section["reason"]
    assert "Shape model unavailable" in proc.stderr  # said before the work starts, not only in the files
    assert any("DEMO model" in w for w in results["qc"]["warnings"])


def test_the_app_gives_the_same_numbers_as_the_cli(cli_run, qdess, env, tmp_path, monkeypatch):
    from gradio_client import handle_file

    from pipeline.config import InferenceOptions
    from pipeline.engine import Engine
    from tests.fixtures.app import page_client, running_app

    monkeypatch.setenv("KNEESCOPE_WEIGHTS_DIR", env["KNEESCOPE_WEIGHTS_DIR"])
    archive = tmp_path / "qdess.zip"  # same case id as the CLI's folder name
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted((qdess / "qdess").iterdir()):
            zf.write(f, f"qdess/{f.name}")
    engine = Engine.load("demo", inference=InferenceOptions(device="cpu"), download=False)
    with running_app(tmp_path / "work", engine=engine) as (url, _):
        client = page_client(url)
        out = client.predict(handle_file(str(archive)), None, "auto", "demo", False, "On", 0.5, True, api_name="/run")
    app_results = json.loads(Path(next(f for f in out[12] if f.endswith("results.json"))).read_text())
    cli_results, _ = cli_run
    for section in ("structures", "cartilage", "laterality"):
        assert app_results[section] == cli_results[section], section
    assert app_results["t2"]["regions"] == cli_results["t2"]["regions"]
    assert app_results["qc"]["warnings"] == cli_results["qc"]["warnings"]
    assert app_results["case_id"] == cli_results["case_id"] == "qdess"


@pytest.mark.parametrize(
    ("name", "compress"),
    [("mri.nii.gz", True), ("mri.nrrd", False), ("mri.nrrd", True), ("mri.mha", False)],
    ids=["nii.gz", "nrrd", "nrrd-gzip", "mha"],
)
def test_cli_refuses_a_truncated_mri_before_loading_a_model(tmp_path, monkeypatch, capsys, name, compress):
    import time

    import numpy as np

    from pipeline.cli import main
    from pipeline.engine import Engine
    from pipeline.io import write_volume
    from pipeline.volume import Volume

    def no_model(*args, **kwargs):
        raise AssertionError("a segmentation model was loaded for a truncated file")

    monkeypatch.setattr(Engine, "load", no_model)
    noise = np.random.default_rng(5).integers(0, 1000, (30, 40, 50)).astype(np.int16)
    path = write_volume(Volume(noise, (0.5, 0.5, 1.0), (0, 0, 0), np.eye(3)), tmp_path / name, compress=compress)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.9)])
    start = time.perf_counter()
    assert main(["analyze", str(path), "--out", str(tmp_path / "out"), "--model", "demo", "-q"]) == 2
    assert time.perf_counter() - start < 5.0
    assert "file is truncated" in capsys.readouterr().err
