"""Cartilage thickness against synthetic knees of exactly known thickness, both sides, several spacings."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.engine import analyze_labels
from tests.fixtures.knees import phantom

TOLERANCE_MM = 0.06
REGIONS = ("femoral", "medial_tibial", "lateral_tibial", "patellar")


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("thickness", [1.5, 2.0, 3.0])
def test_mean_thickness_matches_truth(thickness, side):
    knee = phantom(side=side, femoral_mm=thickness, tibial_mm=thickness, patellar_mm=thickness)
    result = analyze_labels(knee.labels)
    assert result.laterality.side == side
    for region in REGIONS:
        stats = result.cartilage[region].thickness_mm
        assert stats is not None and stats.n_vertices > 300, region
        assert abs(stats.mean - thickness) <= TOLERANCE_MM, (region, stats.mean)
        assert abs(stats.median - thickness) <= TOLERANCE_MM, (region, stats.median)


@pytest.mark.parametrize("spacing", [(0.5, 0.5, 1.0), (0.4, 0.4, 0.4)])
def test_other_voxel_sizes(spacing):
    knee = phantom(side="right", femoral_mm=2.0, tibial_mm=2.5, patellar_mm=3.0, spacing=spacing)
    result = analyze_labels(knee.labels)
    truth = knee.truth_thickness_mm
    for region in REGIONS:
        assert abs(result.thickness(region) - truth[region]) <= TOLERANCE_MM, (region, result.thickness(region))


def test_thickness_arrays_on_bone_meshes(right_result):
    femur = right_result.surfaces["femur"]
    thickness, region = femur.point_data["thickness_mm"], femur.point_data["region"]
    assert thickness.shape == region.shape == (femur.n_points,)
    assert set(np.unique(region)) == {0, 11, 12, 13, 14, 15}
    assert np.all(thickness[region == 0] == 0)
    assert set(np.unique(right_result.surfaces["tibia"].point_data["region"])) == {0, 5, 6}


def test_no_cartilage_gives_no_thickness():
    from pipeline.config import AnalysisConfig
    from pipeline.morphometry.mesh import surface_from_mask
    from pipeline.morphometry.thickness import measure_thickness

    knee = phantom(side="right")
    labels = knee.labels
    femur = surface_from_mask(labels, labels.array == 1, name="femur", smoothing_var_mm2=0.5, target_vertices=5000)
    empty = labels.with_array(np.where(labels.array == 4, 0, labels.array).astype(np.uint8))
    tmap = measure_thickness(femur, empty, (4,), np.zeros(labels.array.shape, np.uint8), AnalysisConfig())
    assert not tmap.has_cartilage.any() and np.all(tmap.thickness_mm == 0)


@pytest.mark.parametrize("side", ["right", "left"])
def test_phantom_is_one_continuous_knee(side):
    """The built-in example is this phantom: no QC warning a newcomer could read as a fault (the trochlea joins the
    condyles' cartilage into one piece)."""
    from tests.fixtures.knees import analysed

    result = analysed(side=side)
    assert result.structures["femoral_cartilage"].n_components == 1
    assert result.warnings == ()
