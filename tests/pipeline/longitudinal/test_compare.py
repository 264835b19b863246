"""Two visits of one knee (pipeline.longitudinal): synthetic pairs of known change and rigid motion.

The follow-ups come from the same phantom the thickness tests use, changed per region and moved rigidly
(pipeline.synthetic.followup). "Stored exactly" pairs keep the baseline's voxels (any change found besides the
known one is the comparison's own error); "resampled" pairs voxelise the moved knee afresh, as a real rescan.
Accuracy pairs use the default voxel size (0.36 x 0.36 x 0.7 mm); refusals and file checks use coarse knees.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from pipeline import labels as L
from pipeline.engine import analyze_labels
from pipeline.longitudinal import DifferentKneesError, compare
from pipeline.synthetic import ORIENTATIONS, PhantomSpec
from pipeline.synthetic.followup import make_followup
from pipeline.volume import Volume
from tests.fixtures.knees import analysed, phantom

COARSE = (0.5, 0.5, 0.8)
#: side -> (changes, rotation about x, y, z in degrees, translation in mm): several degrees about each axis, ~1 cm.
PAIRS = {
    "right": ({"medial_tibial": -0.5, "femoral": -0.3}, (6.0, -4.0, 5.0), (7.0, -5.0, 6.0)),
    "left": ({"lateral_tibial": -0.4, "patellar": 0.3}, (-5.0, 6.0, -4.0), (-6.0, 8.0, 4.0)),
}


@functools.lru_cache(maxsize=8)
def followup(side: str, *, resample: bool = False, spacing=None):
    changes, rotation, translation = PAIRS[side]
    spec = PhantomSpec(side=side) if spacing is None else PhantomSpec(side=side, spacing=spacing)
    visit = make_followup(spec, changes=changes, rotation_deg=rotation, translation_mm=translation, resample=resample)
    return visit, analyze_labels(visit.phantom.labels)


@functools.lru_cache(maxsize=8)
def pair(side: str, *, resample: bool = False):
    visit, result = followup(side, resample=resample)
    return visit, compare(analysed(side=side), result)


def errors(change, truth) -> dict[str, tuple[float, float]]:
    """Region -> (mean, median) error of the recovered change, mm."""
    out = {}
    for region, result in change.regions.items():
        stats = result.thickness_change_mm
        assert stats is not None and stats.n_vertices > 300, region
        out[region] = (stats.mean - truth[region], stats.median - truth[region])
    return out


@pytest.mark.parametrize("side", ["right", "left"])
def test_known_changes_recovered(side):
    visit, change = pair(side)
    assert not [w for w in change.warnings if not w.startswith(("Baseline: ", "Follow-up: "))]  # none of its own
    for region, (mean_error, median_error) in errors(change, visit.changes_mm).items():
        limit = 0.05 if visit.changes_mm[region] else 0.03  # changed regions; unchanged ones must stay put
        assert abs(mean_error) <= limit and abs(median_error) <= limit, (region, mean_error, median_error)
    assert change.regions["medial_tibial" if side == "right" else "lateral_tibial"].thinned_area_mm2 > 300
    ordered = change.ordered_values()
    assert ordered[0][1] == min(value for _, value in ordered)  # sorted from the largest loss


@pytest.mark.parametrize("side", ["right", "left"])
def test_registration_recovers_the_motion(side):
    """Every bone turns with the knee; the tibia also moves with it exactly (a cartilage change moves the femur or
    patella a fraction of a millimetre relative to the tibia in the phantom)."""
    visit, change = pair(side)
    truth = np.linalg.inv(visit.motion)  # registration maps the follow-up onto the baseline
    for bone, reg in change.registrations.items():
        error = reg.transform.rotation @ truth[:3, :3].T
        assert np.degrees(np.arccos(np.clip((np.trace(error) - 1) / 2, -1, 1))) < 0.1, bone  # 0.035 mm at 2 cm
        assert reg.residual_rms_mm < 0.1 and reg.overlap_fraction > 0.8, bone
    points = change.followup.bones["tibia"].points
    expected = points @ truth[:3, :3].T + truth[:3, 3]
    assert np.abs(change.registrations["tibia"].transform.apply(points) - expected).max() < 0.05


def test_resampled_followup_within_008_mm():
    visit, change = pair("right", resample=True)
    found = errors(change, visit.changes_mm)
    worst = max(max(abs(m), abs(d)) for m, d in found.values())
    print(f"resampled follow-up: worst regional error {worst:.3f} mm", {r: round(m, 3) for r, (m, _) in found.items()})
    assert worst <= 0.08


def test_moved_copy_shows_no_change():
    spec = PhantomSpec(side="right", spacing=COARSE)
    copy = make_followup(spec, rotation_deg=(8.0, -3.0, 4.0), translation_mm=(-4.0, 9.0, 3.0))
    change = compare(analysed(side="right", spacing=COARSE), analyze_labels(copy.phantom.labels))
    for region, result in change.regions.items():
        stats = result.thickness_change_mm
        assert stats is not None and abs(stats.mean) <= 0.01 and abs(stats.median) <= 0.01, (region, stats)
        assert result.thinned_area_mm2 + result.thickened_area_mm2 < 0.01 * result.area_mm2, region


def test_left_and_right_refused():
    with pytest.raises(DifferentKneesError, match=r"is a right knee and the follow-up .* a left knee"):
        compare(analysed(side="right", spacing=COARSE), analysed(side="left", spacing=COARSE))


def test_two_different_knees_refused():
    """A knee 15 % larger (another person) has other bone shapes: no rigid fit makes them agree."""
    labels = phantom(side="right", spacing=COARSE).labels
    larger = Volume(labels.array, tuple(1.15 * s for s in labels.spacing), labels.origin, labels.direction)
    with pytest.raises(DifferentKneesError, match="shapes of the two visits disagree"):
        compare(analysed(side="right", spacing=COARSE), analyze_labels(larger))


def test_denuded_cartilage_counts_as_full_loss():
    """A hole punched through the medial tibial cartilage: its area is denuded, its vertices lose all thickness."""
    labels = phantom(side="right", spacing=COARSE).labels
    medial = labels.array == L.CANONICAL[L.MEDIAL_TIBIAL_CARTILAGE]
    points = labels.voxel_points(medial)
    hole = np.linalg.norm(points - points.mean(0), axis=1) < 5.0
    array = labels.array.copy()
    array[tuple(np.argwhere(medial)[hole].T)] = 0
    change = compare(analysed(side="right", spacing=COARSE), analyze_labels(labels.with_array(array)))
    region = change.regions["medial_tibial"]
    assert 0.6 * np.pi * 25 < region.denuded_area_mm2 < 1.2 * np.pi * 25
    assert region.thickness_change_mm.p05 == pytest.approx(-region.baseline_mean_mm, abs=0.15)
    assert abs(change.change("lateral_tibial")) < 0.01


def test_outputs(tmp_path):
    import pyvista as pv
    import trimesh

    _, change = pair("right")
    files = change.write(tmp_path)
    data = json.loads((tmp_path / "change.json").read_text())
    assert data["laterality"] == "right" and data["baseline"]["labels_sha256"]
    assert set(data["regions"]) == set(L.CARTILAGE_REGIONS)
    medial = data["regions"]["medial_tibial"]
    assert {"mean", "median", "std", "p05", "p95", "n_vertices"} == set(medial["thickness_change_mm"])
    assert medial["percent_change"] < -20 and medial["thinned_percent"] > 80
    assert [v["rank"] for v in data["ordered_values"]] == list(range(1, 8))
    assert data["volumes"]["medial_tibial_cartilage"]["change_mm3"] < 0
    assert set(data["registration"]["femur"]) >= {"rotation_deg", "translation_mm", "residual_rms_mm"}
    row = (tmp_path / "change.csv").read_text().splitlines()
    assert len(row) == 2 and "medial_tibial_change_mean_mm" in row[0]
    tibia = pv.read(tmp_path / "meshes" / "tibia_change.vtk")
    assert {"thickness_change_mm", "baseline_mm", "followup_mm", "region"} <= set(tibia.point_data.keys())
    colours = trimesh.load(files["change.glb"]).geometry["tibia"].visual.vertex_colors
    thinned = np.asarray(tibia.point_data["thickness_change_mm"]) < -0.3
    assert (colours[thinned, 2] > colours[thinned, 0]).all()  # losses are blue
    assert (tmp_path / "change_colorbar.png").read_bytes()[:4] == b"\x89PNG"


def test_followup_stored_exactly():
    spec = PhantomSpec(side="left", spacing=COARSE)
    visit = make_followup(spec, rotation_deg=(3.0, -2.0, 7.0), translation_mm=(5.0, 0.0, -8.0))
    base = phantom(side="left", spacing=COARSE).labels
    moved = visit.phantom.labels
    assert np.array_equal(moved.array, base.array)
    np.testing.assert_allclose(moved.direction, visit.motion[:3, :3] @ base.direction, atol=1e-12)
    corner = base.index_to_physical(np.array([[7.0, 11.0, 5.0]]))[0]
    np.testing.assert_allclose(
        moved.index_to_physical(np.array([[7.0, 11.0, 5.0]]))[0], visit.motion[:3, :3] @ corner + visit.motion[:3, 3]
    )


def test_per_compartment_tibial_thickness_keeps_the_old_spec():
    same = phantom(side="right", spacing=COARSE, tibial_mm=1.5).labels.array
    split = phantom(side="right", spacing=COARSE, medial_tibial_mm=1.5, lateral_tibial_mm=1.5, tibial_mm=9.0).labels
    assert np.array_equal(same, split.array)


def test_cli(tmp_path, capsys):
    from pipeline.cli import main
    from pipeline.io import write_volume

    analysed(side="right", spacing=COARSE).write(tmp_path / "baseline", make_zip=False)
    visit = make_followup(PhantomSpec(side="right", spacing=COARSE), changes={"femoral": -0.4}, rotation_deg=(0, 0, 6))
    labels = write_volume(visit.phantom.labels, tmp_path / "visit2.nrrd")
    args = ["compare", str(tmp_path / "baseline"), str(labels), "--out", str(tmp_path / "change"), "-q"]
    assert main([*args, "--label-scheme", "canonical", "--threshold-mm", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "visit2 vs synthetic_right_knee" in out and "femoral_trochlea" in out
    data = json.loads((tmp_path / "change" / "change.json").read_text())
    assert data["followup"]["source"] == "label map" and data["baseline"]["source"] == "analysis folder"
    assert data["threshold_mm"] == 0.3 and abs(data["regions"]["femoral"]["thickness_change_mm"]["mean"] + 0.4) < 0.05
    assert (tmp_path / "change" / "followup" / "results.json").is_file()  # the analysis made for it
    assert main(["compare", str(tmp_path / "baseline"), str(tmp_path / "none.nrrd"), "--out", str(tmp_path)]) == 2
    assert "none.nrrd: no such file" in capsys.readouterr().err


def test_synth_followup_cli(tmp_path):
    from pipeline.cli import main
    from pipeline.io import load_label_map

    args = ["synth", "--out", str(tmp_path), "--side", "left", "--change", "medial_tibial=-0.5"]
    assert main([*args, "--rotate", "4,0,-2", "--translate", "10"]) == 0
    truth = json.loads((tmp_path / "change_truth.json").read_text())
    assert truth["thickness_change_mm"]["medial_tibial"] == -0.5 and truth["thickness_change_mm"]["femoral"] == 0
    motion = np.array(truth["motion_lps_mm"])
    labels = load_label_map(tmp_path / "labels.nrrd", "canonical").volume
    np.testing.assert_allclose(labels.direction, motion[:3, :3] @ ORIENTATIONS["sagittal"], atol=1e-6)
    assert main(["synth", "--out", str(tmp_path), "--change", "tibia=-1"]) == 2
