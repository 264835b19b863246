"""analyze_labels end to end: outputs on disk, schema, QC, schemes, CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from pipeline import labels as L
from pipeline.engine import analyze_labels
from pipeline.errors import EmptySegmentationError
from pipeline.io import load_label_map, write_volume
from tests.fixtures.knees import phantom


@pytest.fixture(scope="module")
def written(right_result, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return out, right_result.write(out)


def test_all_files_written(written):
    out, files = written
    expected = [
        "results.json",
        "results.csv",
        "provenance.json",
        "labels.nii.gz",
        "labels.nrrd",
        "subregions.nii.gz",
        "label_table.json",
        "knee.glb",
        "meshes/femur.vtk",
        "meshes/tibia.vtk",
        "meshes/patella.vtk",
        "meshes/femoral_cartilage.vtk",
        "meshes/medial_meniscus.vtk",
    ]
    for name in expected:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    with zipfile.ZipFile(files["zip"]) as archive:
        names = set(archive.namelist())
    assert files["zip"].name == "synthetic_right_knee_results.zip"
    assert set(expected) <= names


def test_results_json_schema(written):
    out, _ = written
    data = json.loads((out / "results.json").read_text())  # strict: no NaN tokens
    assert data["schema_version"] == "1.0"
    assert data["laterality"]["side"] == "right"
    assert set(data["structures"]) == set(L.STRUCTURES)
    assert set(data["cartilage"]) == set(L.CARTILAGE_REGIONS)
    femoral = data["cartilage"]["femoral"]
    assert set(femoral["thickness_mm"]) == {"mean", "median", "std", "p95", "n_vertices", "area_mm2"}
    assert femoral["volume_mm3"] > 0
    assert data["t2"]["computed"] is False and "only a label map" in data["t2"]["reason"]
    assert data["input"]["labels"]["orientation"] == "PIR"
    assert data["input"]["labels"]["spacing_mm"] == [0.36, 0.36, 0.7]
    assert isinstance(data["qc"]["warnings"], list)


def test_subregion_volumes_add_up(right_result):
    femoral = right_result.cartilage["femoral"].volume_mm3
    parts = sum(right_result.cartilage[r].volume_mm3 for r in L.FEMORAL_SUBREGIONS)
    assert parts == pytest.approx(femoral)
    assert femoral == pytest.approx(right_result.structures["femoral_cartilage"].volume_mm3)


def test_csv_is_one_row_with_stable_columns(written, right_result):
    out, _ = written
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    assert list(rows[0]) == list(right_result.csv_row())
    assert float(rows[0]["medial_tibial_thickness_mean_mm"]) == pytest.approx(2.0, abs=0.06)


def test_provenance(written):
    out, _ = written
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["software"]["name"] == "KneeScope"
    assert prov["packages"]["numpy"] and prov["packages"]["SimpleITK"]
    assert prov["parameters"]["ray_outside_mm"] == 10.0
    assert {"load", "meshes", "thickness"} <= set(prov["timings_s"])
    assert prov["label_scheme"]["name"] == "canonical"


def test_vtk_and_glb(written):
    import pyvista as pv
    import trimesh

    out, _ = written
    femur = pv.read(out / "meshes" / "femur.vtk")
    assert {"thickness_mm", "region"} <= set(femur.point_data.keys())
    assert femur.n_open_edges == 0
    assert (out / "knee.glb").read_bytes()[:4] == b"glTF"
    scene = trimesh.load(out / "knee.glb")
    assert {"femur", "tibia", "patella", "femoral_cartilage", "lateral_meniscus"} <= set(scene.geometry)
    colours = scene.geometry["femur"].visual.vertex_colors
    assert len(np.unique(colours[:, :3], axis=0)) > 20  # a colour map, not one flat colour


def test_bone_surfaces_closed_and_outward(right_result):
    from pipeline.morphometry.mesh import open_edge_count

    for bone in L.BONES:
        surface = right_result.surfaces[bone]
        assert open_edge_count(surface) == 0, bone
        tri = surface.points[surface.faces]
        areas = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1) / 2
        assert areas.min() > 1e-8, bone
        voxel_volume = right_result.structures[bone].volume_mm3
        assert surface.signed_volume_mm3() == pytest.approx(voxel_volume, rel=0.03), bone


def test_femoral_subregions_follow_anatomy():
    """Weight-bearing lies below the condyle centres, the trochlea in front, medial regions on the medial side."""
    for side in ("right", "left"):
        result = analyze_labels(phantom(side=side).labels)
        sub = result.subregions
        centre = np.array(phantom(side=side).spec.centre_lps)
        medial_sign = 1 if side == "right" else -1

        def points(rid, sub=sub, centre=centre):
            return sub.voxel_points(sub.array == rid) - centre

        assert (points(11)[:, 1] < -10).all()  # trochlea: anterior (LPS y negative)
        assert np.median(points(12)[:, 0]) * medial_sign > 10  # medial WB on the medial side
        assert np.median(points(13)[:, 0]) * medial_sign < -10
        assert np.median(points(14)[:, 1]) > 5 and np.median(points(15)[:, 1]) > 5  # posterior
        wb_height = np.median(points(12)[:, 2])
        assert wb_height < np.median(points(14)[:, 2])


def test_missing_structure_is_reported_not_fatal():
    labels = phantom(side="right").labels
    no_patella = labels.with_array(np.where(np.isin(labels.array, [3, 7]), 0, labels.array).astype(np.uint8))
    result = analyze_labels(no_patella)
    assert not result.structures["patella"].present
    assert result.cartilage["patellar"].thickness_mm is None
    assert any("Patella not found" in w for w in result.warnings)
    assert result.thickness("medial_tibial") == pytest.approx(2.0, abs=0.06)


def test_native_scheme_round_trip(tmp_path):
    labels = phantom(side="right").labels
    to_native = np.zeros(16, np.uint8)
    for name, value in L.CANONICAL.items():
        to_native[value] = L.NATIVE[name]
    path = write_volume(labels.with_array(to_native[labels.array]), tmp_path / "native.nrrd")
    result = analyze_labels(path, scheme="native")
    np.testing.assert_array_equal(result.labels.array, labels.array)
    wrong = analyze_labels(path, scheme="canonical")  # the classic mistake is flagged
    assert any("label scheme is probably wrong" in w for w in wrong.warnings)


def test_split_and_small_structures_warned():
    labels = phantom(side="right").labels
    data = labels.array.copy()
    data[2:22, 2:22, 2:22] = L.CANONICAL["tibia"]  # a detached tibia fragment of ~730 mm3
    result = analyze_labels(labels.with_array(data))
    assert any("Tibia is split into 2 pieces" in w for w in result.warnings)


def test_empty_label_map():
    labels = phantom(side="right").labels
    with pytest.raises(EmptySegmentationError, match="No knee structures found"):
        analyze_labels(labels.with_array(np.zeros_like(labels.array)))


def test_load_label_map_returns_canonical(tmp_path):
    labels = phantom(side="left").labels
    path = write_volume(labels, tmp_path / "seg.nii.gz")
    loaded = load_label_map(path, "canonical")
    assert loaded.volume.orientation == labels.orientation
    np.testing.assert_array_equal(loaded.volume.array, labels.array)


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_cli_analyze_with_image(tmp_path):
    from pipeline.synthetic import render_mr

    labels = phantom(side="left").labels
    seg = write_volume(labels, tmp_path / "knee_seg.nrrd")
    image = write_volume(render_mr(labels), tmp_path / "knee.nii.gz")
    proc = _cli(
        "analyze", str(image), "--labels", str(seg), "--label-scheme", "canonical", "--out", str(tmp_path / "out"), "-q"
    )
    assert proc.returncode == 0, proc.stderr
    assert "left knee" in proc.stdout
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["input"]["image"]["file_name"] == "knee.nii.gz"
    assert (tmp_path / "out" / "knee_results.zip").is_file()


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    proc = _cli("analyze", "--labels", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "label maps must be NIfTI" in proc.stderr
    proc = _cli("analyze", str(bad), "--out", str(tmp_path / "o"))  # an image to segment: checked before any model
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "notes.txt: unsupported file type" in proc.stderr
