"""The shape-model stage inside a full analysis: unavailable weights, and a (tiny) model run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline.engine import analyze_labels
from pipeline.shape import ShapeOptions
from tests.fixtures.knees import phantom
from tests.fixtures.shape import TINY_CONFIG, train_tiny_decoder, write_bscore_folder, write_model_folder

QUICK = {"n_iterations": 60, "n_lr_updates": 3, "resolution": 48, "icp_iterations": 20}


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        decoder = train_tiny_decoder(steps=300, seed=0)
    finally:
        torch.set_num_threads(threads)
    root = tmp_path_factory.mktemp("nsm")
    write_model_folder(root / "weights", decoder, TINY_CONFIG, model_id="647")
    bscore = write_bscore_folder(root / "bscore", np.array([1.0, -1.0, 0.0, 0.0]) / np.sqrt(2), 0.0, 0.15)
    return root / "weights", bscore


def test_unavailable_weights_are_reported_and_the_rest_completes(tmp_path):
    result = analyze_labels(phantom(side="right").labels, shape_model=ShapeOptions(model_dir=tmp_path / "none"))
    assert result.shape_model.to_dict()["computed"] is False
    assert (
        "shape model unavailable" in result.shape_model.to_dict()["reason"]
        and "HF_TOKEN" in result.shape_model.to_dict()["reason"]
    )
    assert any("shape model unavailable" in w for w in result.warnings)
    assert result.thickness("femoral") == pytest.approx(2.0, abs=0.06)


def test_not_requested_by_default(right_result):
    assert right_result.shape_model.to_dict() == {"computed": False, "reason": "Shape model not requested."}


@pytest.mark.parametrize("side", ["left"])  # right knees: tests/pipeline/shape/test_model.py
def test_tiny_model_end_to_end(tiny_weights, tmp_path, side):
    weights, bscore = tiny_weights
    options = ShapeOptions(model_dir=weights, bscore_dir=bscore, device="cpu", revision="test", fit_overrides=QUICK)
    result = analyze_labels(phantom(side=side).labels, shape_model=options)
    section = result.to_dict()["shape_model"]
    assert section["computed"] is True and section["model_id"] == "647" and section["side"] == side
    assert len(section["latent"]) == 4 and np.isfinite(section["bscore"]) and section["assd_bone_mm"] > 0
    assert section["mirrored"] is (side == "left")
    recon = result.surfaces["femur_nsm_reconstruction"]
    femur = result.surfaces["femur"]
    # reconstructions are shown in the patient's own frame: a left knee's mirroring is undone
    assert recon.points[:, 0].mean() == pytest.approx(femur.points[:, 0].mean(), abs=8.0)
    files = result.write(tmp_path / "out")
    params = json.loads(files["nsm_params.json"].read_text())
    assert np.asarray(params["latent"]).shape == (1, 4) and "Bscore" in params
    assert (tmp_path / "out" / "meshes" / "femur_nsm_reconstruction.vtk").is_file()
    assert json.loads(files["results.json"].read_text())["shape_model"]["weights_revision"] == "test"
