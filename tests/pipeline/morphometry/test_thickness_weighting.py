"""Region statistics weight vertices by area, so they describe the anatomy, not the mesh's vertex density."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import AnalysisConfig
from pipeline.morphometry.mesh import surface_from_mask
from pipeline.morphometry.summary import ThicknessStats, weighted_quantiles
from pipeline.morphometry.thickness import measure_thickness
from pipeline.volume import Volume


def test_weighted_quantiles_match_numpy_for_equal_weights():
    values = np.random.default_rng(0).normal(2, 0.5, 1001)
    median, p95 = weighted_quantiles(values, np.ones_like(values), (0.5, 0.95))
    assert median == pytest.approx(np.median(values), abs=1e-9)
    assert p95 == pytest.approx(np.percentile(values, 95), abs=0.01)


def test_weights_shift_the_statistics():
    stats = ThicknessStats.from_values(np.array([1.0, 3.0]), np.array([3.0, 1.0]))
    assert stats.mean == pytest.approx(1.5) and stats.area_mm2 == pytest.approx(4.0)
    assert stats.std == pytest.approx(np.sqrt(0.75))


@pytest.fixture(scope="module")
def wedge() -> Volume:
    """A bone block with a cartilage wedge on top, 1 mm thick at one end and 3 mm at the other (mean 2 mm)."""
    spacing = (0.36, 0.36, 0.7)  # i, j, k
    direction = np.eye(3)
    shape = (60, 140, 160)  # k (z), j (y), i (x)
    volume = Volume(np.zeros(shape, np.uint8), spacing, (0.0, 0.0, 0.0), direction)
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    x, y, z = ii * spacing[0], jj * spacing[1], kk * spacing[2]
    inside_xy = (x > 8) & (x < 50) & (y > 8) & (y < 42)
    top = 25.55  # on a voxel boundary (k spacing 0.7): a grid-aligned flat face would otherwise gain half a voxel
    bone = inside_xy & (z > 5) & (z <= top)
    cartilage_xy = (x > 14) & (x < 44) & (y > 14) & (y < 36)  # inset: every cartilage ray starts on the flat top
    thickness = 1.0 + 2.0 * (x - 14) / 30
    cartilage = cartilage_xy & (z > top) & (z <= top + thickness)
    data = np.where(bone, 1, np.where(cartilage, 4, 0)).astype(np.uint8)
    return volume.with_array(data)


@pytest.mark.parametrize("budget", [2_000, 20_000])
def test_wedge_mean_is_the_area_mean_whatever_the_vertex_budget(wedge, budget):
    bone = surface_from_mask(wedge, wedge.array == 1, name="tibia", smoothing_var_mm2=0.5, target_vertices=budget)
    tmap = measure_thickness(bone, wedge, (4,), (wedge.array == 4).astype(np.uint8) * 5, AnalysisConfig())
    measured = tmap.region > 0
    weighted = ThicknessStats.from_values(tmap.thickness_mm[measured], bone.vertex_areas()[measured])
    assert weighted.mean == pytest.approx(2.0, abs=0.06)
    # 0.7 mm slices across the wedge make its thickness a staircase (1.4, 2.1, 2.8 ...): the median sits on a step
    assert weighted.median == pytest.approx(2.0, abs=0.15)
    assert weighted.area_mm2 == pytest.approx(30 * 22, rel=0.06)


def _refine(surface, select):
    """Split each selected triangle in four (edge midpoints): 4x the vertex density there, same geometry."""
    from pipeline.morphometry.mesh import Surface

    points, faces = [*surface.points], []
    midpoint: dict[tuple[int, int], int] = {}

    def mid(a, b):
        key = (min(a, b), max(a, b))
        if key not in midpoint:
            midpoint[key] = len(points)
            points.append((surface.points[a] + surface.points[b]) / 2)
        return midpoint[key]

    for face, refine in zip(surface.faces, select, strict=True):
        a, b, c = (int(v) for v in face)
        if not refine:
            faces.append((a, b, c))
            continue
        ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
        faces += [(a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca)]
    return Surface(surface.name, np.array(points), np.array(faces, dtype=np.int64))


def test_dense_vertices_on_thin_cartilage_do_not_bias_the_mean(wedge):
    bone = surface_from_mask(wedge, wedge.array == 1, name="tibia", smoothing_var_mm2=0.5, target_vertices=5_000)
    for _ in range(2):  # 16x denser over the thin half of the wedge
        bone = _refine(bone, bone.points[bone.faces].mean(axis=1)[:, 0] < 29)
    tmap = measure_thickness(bone, wedge, (4,), (wedge.array == 4).astype(np.uint8) * 5, AnalysisConfig())
    measured = tmap.region > 0
    unweighted = tmap.thickness_mm[measured].mean()
    weighted = ThicknessStats.from_values(tmap.thickness_mm[measured], bone.vertex_areas()[measured])
    assert unweighted < 1.8  # a vertex mean follows the mesh density ...
    assert weighted.mean == pytest.approx(2.0, abs=0.06)  # ... an area mean follows the anatomy
