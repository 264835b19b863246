"""The Goyal models on the command line: analyze, batch, compare and weights, with and without the weights.

With weights means the test stand-in in aagatti/dosma_bones' published layout in a hand-built weights cache
(tests/goyal_fixtures.py); analyze runs as users run it, ``python -m pipeline`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import build_parser, main
from pipeline.io import write_volume
from tests.fixtures import REPO
from tests.fixtures.goyal import FAKE_COMMIT, STANDIN_INFO, standin_knee, write_standin_cache

ROOT = REPO
requires_standin = pytest.mark.skipif(not STANDIN_INFO, reason="the Goyal stand-in (tests/data/goyal/standin) absent")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return write_standin_cache(tmp_path_factory.mktemp("goyal-weights"))


@pytest.fixture(scope="module")
def knee_file(tmp_path_factory):
    _, image = standin_knee(orientation="sagittal")
    return write_volume(image, tmp_path_factory.mktemp("goyal-knee") / "knee.nii.gz")


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_model_option_offers_the_goyal_family_in_every_command():
    parser = build_parser()
    for command in (["analyze", "x.nii.gz"], ["batch", "m.csv"], ["compare", "a", "b"]):
        for model in ("goyal-sagittal", "goyal-sagittal-v1", "goyal-coronal", "goyal-axial", "goyal-staple"):
            assert parser.parse_args([*command, "--out", "o", "--model", model]).model == model


def test_analyze_without_the_weights_says_how_to_get_them(tmp_path, monkeypatch, offline, capsys):
    monkeypatch.setenv("KNEESCOPE_WEIGHTS_DIR", str(tmp_path / "empty-cache"))
    noise = write_volume(_noise_volume(), tmp_path / "noise.nii.gz")
    args = ["analyze", str(noise), "--model", "goyal-sagittal", "--device", "cpu", "--backend", "torch"]
    code = main([*args, "--out", str(tmp_path), "-q"])
    err = capsys.readouterr().err
    assert "The 'goyal-sagittal' model is unavailable" in err
    assert "python -m pipeline weights download goyal-sagittal" in err and "about 324 MB" in err
    # The demo model stood in; what it made of noise is returned with the segmentation verdict "failed".
    (written,) = tmp_path.glob("**/results.json")
    assert code == 0 and json.loads(written.read_text())["qc"]["segmentation"]["verdict"] == "failed"


def _noise_volume():
    from pipeline.volume import Volume

    noise = np.random.default_rng(0).normal(100, 5, (12, 12, 12)).astype(np.float32)
    return Volume(noise, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))


def test_weights_list_download_and_verify(weights_dir, monkeypatch, offline, capsys, tmp_path):
    monkeypatch.setenv("KNEESCOPE_WEIGHTS_DIR", str(tmp_path / "empty-cache"))
    assert main(["weights", "list"]) == 0
    listing = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("goyal")}
    assert set(listing) == {"goyal-sagittal", "goyal-sagittal-v1", "goyal-coronal", "goyal-axial", "goyal-staple"}
    assert all("not downloaded" in line and "[revision not pinned]" in line for line in listing.values())
    assert main(["weights", "download", "goyal-sagittal"]) == 2
    assert "HF_HUB_OFFLINE=1" in capsys.readouterr().err
    if not STANDIN_INFO:
        return
    monkeypatch.setenv("KNEESCOPE_WEIGHTS_DIR", str(weights_dir))
    assert main(["weights", "verify", "goyal-staple"]) == 0
    out = capsys.readouterr().out
    assert f"goyal-staple: OK (hub-cache, revision {FAKE_COMMIT})" in out
    assert out.count("sha256") == 3 and "coronal_best_model.h5" in out


@requires_standin
@pytest.mark.slow
def test_analyze_with_goyal_sagittal_end_to_end(weights_dir, knee_file, tmp_path):
    env = {**os.environ, "KNEESCOPE_WEIGHTS_DIR": str(weights_dir), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pipeline", "analyze", str(knee_file), "--model", "goyal-sagittal"]
    command += ["--device", "cpu", "--backend", "openvino", "--precision", "fp32", "--out", str(tmp_path / "out"), "-q"]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NOTICE" not in proc.stderr  # the requested model ran, no stand-in for it
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    segmentation = json.loads((tmp_path / "out" / "provenance.json").read_text())["segmentation"]
    assert segmentation["model"] == "goyal-sagittal" and segmentation["revision"] == FAKE_COMMIT
    assert segmentation["planes"][0]["plane"] == "sagittal"
    assert results["cartilage"]["femoral"]["thickness_mm"]["mean"] > 0
    assert "Case knee" in proc.stdout


@requires_standin
@pytest.mark.slow
def test_batch_with_goyal_sagittal(weights_dir, knee_file, tmp_path, monkeypatch, offline):
    monkeypatch.setenv("KNEESCOPE_WEIGHTS_DIR", str(weights_dir))
    (tmp_path / "MANIFEST.csv").write_text(f"case_id,image\nknee1,{knee_file}\n")
    out = tmp_path / "cohort"
    args = ["batch", str(tmp_path / "MANIFEST.csv"), "--out", str(out), "--model", "goyal-sagittal"]
    assert main([*args, "--device", "cpu", "-q"]) == 0
    table = pd.read_csv(out / "cohort.csv")
    assert list(table["status"]) == ["ok"]
    record = json.loads((out / "cohort.json").read_text())
    assert record["model"]["requested"] == "goyal-sagittal"


NO_TENSORFLOW = textwrap.dedent(
    """
    import importlib.abc, json, sys

    BLOCKED = ("tensorflow", "keras", "tf_keras")
    attempts = []

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                attempts.append(name)
                raise ImportError(f"{name} is blocked by the test")
            return None

    sys.meta_path.insert(0, Refuse())
    import pipeline
    from pipeline.config import InferenceOptions
    from pipeline.segmentation.goyal.segmenter import GoyalSegmenter
    from tests.fixtures.goyal import standin_file, standin_knee

    _, image = standin_knee(orientation="axial")
    segmenter = GoyalSegmenter.from_files(
        [("sagittal", standin_file())], options=InferenceOptions(device="cpu"), require_knee=False
    )
    labels = segmenter.predict(image).labels.array
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(json.dumps({"attempts": attempts, "loaded": loaded, "labelled": int((labels > 0).sum())}))
    """
)


@requires_standin
def test_a_goyal_segmentation_never_imports_tensorflow_or_keras():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"attempts": [], "loaded": [], "labelled": report["labelled"]} and report["labelled"] > 0
