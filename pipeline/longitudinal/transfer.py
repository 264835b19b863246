"""Both visits' cartilage thickness on the baseline's bone vertices, measured along the same rays.

Each baseline vertex gets one ray; the bone's registration carries it into the follow-up scan, and both scans are
measured along it with the same code and parameters as any thickness (``morphometry.thickness.measure_thickness``).
Both visits are read along the same line through the same anatomy: exact correspondence, no nearest-point matching
between two surfaces, and a rigidly moved copy of a knee gives back exactly its own thickness. Each vertex keeps the
baseline's region, so both visits share one set of region boundaries.

The rays are not quite the baseline analysis's: their directions are averaged over about 1.5 mm of surface and each
starts a voxel's width off its vertex, in a fixed pseudo-random direction. A scan's own vertices and normals follow
its voxel staircase (which the bone shares with the cartilage it touches), so its own rays read its cartilage
differently from how they read any other scan; smoothed, shifted rays read both scans alike (bench/RESULTS.md gives
the errors either way).

A baseline-measured vertex whose follow-up ray finds nothing has either lost its cartilage (denuded: 0 mm, a full
loss, as bone-referenced methods count it) or lies at the plate's rim, where a slightly different segmentation
edge decides whether a ray crosses cartilage at all: rim vertices (within ``RIM_MM`` of an unmeasured baseline
vertex) are left out instead of counting as a loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import AnalysisConfig
from ..morphometry.mesh import Surface
from ..morphometry.thickness import measure_thickness
from ..volume import Volume
from .registration import RigidTransform

#: Baseline vertices closer than this to an unmeasured one sit on the cartilage plate's rim.
RIM_MM = 2.0
#: Width (mm) over which the rays' directions are averaged (see smoothed_normals).
RAY_SMOOTHING_MM = 1.5
#: Rays are measured at vertices the baseline analysis found cartilage at and within this distance of them.
CANDIDATE_MM = 3.0


@dataclass(frozen=True)
class TransferredThickness:
    """Both visits' thickness on one bone's baseline vertices.

    Attributes:
        baseline_mm: the baseline analysis's thickness (NaN where it measured none).
        followup_mm: follow-up thickness along the same rays (0 where denuded; NaN where not measurable).
        region: the baseline's region id per vertex (0 = none).
        denuded: baseline-measured vertices whose follow-up ray crosses no cartilage at all, away from the rim.
        areas_mm2: the area each baseline vertex stands for.
    """

    baseline_mm: np.ndarray
    followup_mm: np.ndarray
    region: np.ndarray
    denuded: np.ndarray
    areas_mm2: np.ndarray

    @property
    def change_mm(self) -> np.ndarray:
        """Follow-up minus baseline per vertex; NaN where either is missing."""
        return self.followup_mm - self.baseline_mm


def transfer_thickness(
    baseline: Surface,
    baseline_labels: Volume,
    baseline_regions: np.ndarray,
    followup_labels: Volume,
    cartilage_values: tuple[int, ...],
    to_followup: RigidTransform,
    config: AnalysisConfig,
    *,
    ray_smoothing_mm: float = RAY_SMOOTHING_MM,
    jitter_mm: float = 0.0,
) -> TransferredThickness:
    """Measure both visits' cartilage along the same rays: the baseline's smoothed vertex normals.

    Args:
        baseline: baseline bone surface.
        baseline_labels, baseline_regions: the baseline's canonical label map and region id per voxel.
        followup_labels: the follow-up's canonical label map.
        cartilage_values: canonical label values of this bone's cartilage.
        to_followup: baseline LPS mm -> follow-up LPS mm (the inverse of the bone's registration).
        config: the thickness parameters (the baseline analysis's, so both visits are measured alike).
        ray_smoothing_mm: width over which the rays' directions are averaged.
        jitter_mm: each ray starts this far off its vertex, across the ray (see _jitter).
    """
    n = baseline.n_points
    directions = smoothed_normals(baseline, ray_smoothing_mm)
    rays = _Rays(baseline.points + _jitter(directions, jitter_mm), directions)
    candidates = _near_cartilage(baseline)
    own = rays.measure(candidates, baseline_labels, cartilage_values, baseline_regions, config)
    region = np.zeros(n, dtype=np.uint8)
    region[candidates] = own.region
    baseline_mm = np.full(n, np.nan)
    baseline_mm[candidates] = np.where(own.region > 0, own.thickness_mm, np.nan)
    followup_mm = np.full(n, np.nan)
    denuded = np.zeros(n, dtype=bool)
    moved, chosen = rays.moved(to_followup), np.flatnonzero(region > 0)
    hits = moved.measure(chosen, followup_labels, cartilage_values, followup_labels.array, config)
    followup_mm[chosen] = np.where(hits.region > 0, hits.thickness_mm, np.nan)
    missing = chosen[hits.region == 0]
    if missing.size:
        # Without the edge rule, a ray that still finds no cartilage run near the bone crosses none at all.
        loose_config = config.with_changes(min_exit_cos=0.0)
        loose = moved.measure(missing, followup_labels, cartilage_values, followup_labels.array, loose_config)
        bare = missing[(loose.region == 0) & ~_near_rim(baseline.points, region > 0)[missing]]
        denuded[bare] = True
        followup_mm[bare] = 0.0
    return TransferredThickness(baseline_mm, followup_mm, region, denuded, baseline.vertex_areas())


@dataclass(frozen=True)
class _Rays:
    """One ray per baseline vertex (origin and unit direction, LPS mm), measurable in either scan."""

    origins: np.ndarray
    directions: np.ndarray

    def moved(self, transform: RigidTransform) -> _Rays:
        return _Rays(transform.apply(self.origins), self.directions @ transform.rotation.T)

    def measure(self, vertices: np.ndarray, labels: Volume, values: tuple[int, ...], regions, config: AnalysisConfig):
        # measure_thickness needs no faces when the directions are given: a face-less surface of the ray origins.
        origins = Surface("rays", self.origins[vertices], np.zeros((0, 3), dtype=np.int64))
        return measure_thickness(origins, labels, values, regions, config, normals=self.directions[vertices])


def _near_cartilage(surface: Surface) -> np.ndarray:
    """Vertices the analysis measured cartilage at, and those within CANDIDATE_MM of one (all without that record)."""
    from scipy.spatial import cKDTree

    if "region" not in surface.point_data:
        return np.arange(surface.n_points)
    measured = np.asarray(surface.point_data["region"]) > 0
    if not measured.any():
        return np.flatnonzero(measured)
    distance, _ = cKDTree(surface.points[measured]).query(surface.points, distance_upper_bound=CANDIDATE_MM)
    return np.flatnonzero(np.isfinite(distance))


def _jitter(directions: np.ndarray, radius_mm: float) -> np.ndarray:
    """A fixed pseudo-random offset per vertex, perpendicular to its ray, of length ``radius_mm``.

    Decimation keeps vertices where the voxel staircase bends, so a scan's own vertices sample its cartilage at
    particular phases of the staircase while carried rays sample the other scan at any phase; shifting every ray a
    little off its vertex samples both scans alike (bench/RESULTS.md). Seeded, so results repeat exactly.
    """
    if radius_mm <= 0:
        return np.zeros_like(directions)
    helper = np.where(np.abs(directions[:, [0]]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    first = np.cross(directions, helper)
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    second = np.cross(directions, first)
    angle = np.random.default_rng(0).uniform(0, 2 * np.pi, len(directions))[:, None]
    return radius_mm * (np.cos(angle) * first + np.sin(angle) * second)


def smoothed_normals(surface: Surface, width_mm: float) -> np.ndarray:
    """Vertex normals averaged over the mesh neighbourhood (repeated one-ring means, about ``width_mm`` wide).

    A voxelised surface's normals wobble from step to step of its staircase, and the bone's staircase is the one its
    cartilage boundary shares: rays along them suit that scan's voxels, not the other visit's. Averaged rays suit
    neither, so both visits are read alike (bench/RESULTS.md, "rays": it matters most for coarse voxels).
    """
    from scipy import sparse

    normals = surface.vertex_normals()
    faces = surface.faces
    if width_mm <= 0 or len(faces) == 0:
        return normals
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edge_mm = float(np.linalg.norm(surface.points[edges[:, 0]] - surface.points[edges[:, 1]], axis=1).mean())
    # A one-ring mean spreads like a random-walk step of about the edge length: variance ~ 3/7 edge^2 per step.
    iterations = int(np.clip(np.ceil((width_mm / edge_mm) ** 2 * 7 / 3), 1, 60))
    n = surface.n_points
    both = np.concatenate([edges, edges[:, ::-1]])
    adjacency = sparse.csr_matrix((np.ones(len(both)), (both[:, 0], both[:, 1])), shape=(n, n))
    adjacency.data[:] = 1.0  # an edge shared by two faces counts once
    adjacency = adjacency + sparse.identity(n, format="csr")
    for _ in range(iterations):
        normals = adjacency @ normals
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return normals


def _near_rim(points: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Vertices within RIM_MM of a vertex where the baseline measured no cartilage."""
    from scipy.spatial import cKDTree

    if measured.all():
        return np.zeros(len(points), dtype=bool)
    distance, _ = cKDTree(points[~measured]).query(points, distance_upper_bound=RIM_MM)
    return np.isfinite(distance)
