"""T2 inside a full analysis: computed from a qDESS DICOM image, and a stated reason when it cannot be."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.engine import analyze_labels
from pipeline.io import write_volume
from tests.fixtures import qdess as qf


@pytest.fixture(scope="module")
def qdess(tmp_path_factory):
    phantom = qf.make_qdess_phantom()
    folder = qf.write_qdess_series(tmp_path_factory.mktemp("qdess") / "series", phantom)
    return phantom, folder


def test_analysis_with_qdess_image_computes_t2(qdess, tmp_path):
    phantom, folder = qdess
    result = analyze_labels(phantom.labels, image=folder)
    assert result.t2.to_dict()["computed"] is True and result.t2.to_dict()["method"] == "spoiled"
    for region, ids in (("medial_tibial", (5,)), ("patellar", (7,)), ("femoral", (11, 12, 13, 14, 15))):
        assert result.t2.to_dict()["regions"][region]["mean"] == pytest.approx(phantom.truth_mean(ids), rel=0.01), (
            region
        )
    tibia = result.surfaces["tibia"]  # mean T2 across the cartilage along each bone normal
    t2_along = tibia.point_data["t2_ms"][tibia.point_data["region"] == 5]
    assert np.nanmedian(t2_along) == pytest.approx(25.0, rel=0.02)
    files = result.write(tmp_path / "out")
    assert {"t2map.nii.gz", "depth_labels.nrrd"} <= set(files)
    data = json.loads(files["results.json"].read_text())
    assert data["t2"]["regions"]["lateral_tibial"]["deep"]["n_voxels"] > 0
    row = result.csv_row()
    assert row["t2_method"] == "spoiled" and row["patellar_t2_mean_ms"] == pytest.approx(45.0, rel=0.01)


def test_stripped_tags_say_low_spoiling(tmp_path):
    phantom = qf.make_qdess_phantom()
    folder = qf.write_qdess_series(tmp_path / "s", phantom, private_tags="absent")
    result = analyze_labels(phantom.labels, image=folder)
    assert result.t2.to_dict()["method"] == "low_spoiling"
    assert any("low-spoiling" in w for w in result.warnings)


def test_nifti_image_gives_reason_not_t2(qdess, tmp_path):
    phantom, _ = qdess
    image = write_volume(phantom.labels, tmp_path / "knee.nii.gz")
    result = analyze_labels(phantom.labels, image=image)
    assert result.t2.to_dict()["computed"] is False and "spin-echo DICOM series" in result.t2.to_dict()["reason"]
    assert result.thickness("medial_tibial") is not None  # the rest still runs
    requested = analyze_labels(phantom.labels, image=image, t2=True)
    assert any("qDESS" in w for w in requested.warnings)


def test_dual_echo_spin_echo_is_neither_qdess_nor_mese(tmp_path):
    phantom = qf.make_qdess_phantom()
    folder = qf.write_mese_series(tmp_path / "pd-t2", phantom, n_echoes=2)
    result = analyze_labels(phantom.labels, image=folder)
    t2 = result.t2.to_dict()
    assert t2["computed"] is False and t2["reason"].startswith("Not a T2 series (qDESS or MESE)")
    assert "at least 4 echoes; this series has 2" in t2["reason"]
