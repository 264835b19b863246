"""Flattened 2-D cartilage thickness maps of the femur and the tibia, from the bones' per-vertex thickness.

The usual way thickness is shown in knee OA studies: each bone's cartilage-bearing vertices are projected onto a
plane and their thickness averaged in square bins (NaN where no cartilage was measured).

* **Tibia**: seen from above (projection along the patient's superior axis): medial-lateral across, anterior up.
* **Femur**: unrolled around the medial-lateral axis. A circle is fitted (least squares) to the cartilage-bearing
  vertices in the sagittal (anterior-superior) plane; each vertex's angle about its centre, from anterior (the
  trochlea) through distal (weight-bearing) to posterior, times the circle's radius is the vertical coordinate
  (arc length, mm), medial-lateral position the horizontal one. A cylinder is the standard simplification of
  the condyles: distances along the arc are exact at the fitted radius and stretched or shrunk elsewhere.

Patient axes are used (as ``morphometry.anatomy`` does): knee MRI is acquired close to them. Medial is drawn on
the left of every map, so left and right knees look alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import labels as L
from ..morphometry.mesh import Surface

BIN_MM = 1.0
REACH = 1.5  # bins: a cell takes the vertices within this distance of its centre
NEIGHBOURS = 8
TIBIAL_REGIONS = (L.REGION_IDS["medial_tibial"], L.REGION_IDS["lateral_tibial"])
FEMORAL_REGIONS = tuple(L.FEMORAL_SUBREGIONS.values())


@dataclass(frozen=True)
class FlatMap:
    """A 2-D thickness map: ``values`` (mm, NaN = no cartilage), rows top to bottom, and its extent in mm.

    ``extent`` is (left, right, bottom, top) as matplotlib's imshow takes it (with origin "upper").
    """

    bone: str
    values: np.ndarray
    extent: tuple[float, float, float, float]
    x_label: str
    y_label: str
    n_vertices: int

    @property
    def mean_mm(self) -> float | None:
        finite = self.values[np.isfinite(self.values)]
        return float(finite.mean()) if finite.size else None


def tibial_map(tibia: Surface, *, medial_sign: float, bin_mm: float = BIN_MM) -> FlatMap | None:
    """The tibial plateau seen from above; None without measured tibial cartilage."""
    points, thickness = _cartilage_vertices(tibia, TIBIAL_REGIONS)
    if points is None:
        return None
    across = -medial_sign * points[:, 0]  # medial to the left (smaller values)
    up = -points[:, 1]  # anterior (-P) up
    return _binned("tibia", across, up, thickness, bin_mm, "medial ← → lateral (mm)", "posterior → anterior (mm)")


def femoral_map(femur: Surface, *, medial_sign: float, bin_mm: float = BIN_MM) -> FlatMap | None:
    """The femoral cartilage unrolled around the medial-lateral axis; None without measured femoral cartilage."""
    points, thickness = _cartilage_vertices(femur, FEMORAL_REGIONS)
    if points is None or len(points) < 3:
        return None
    y, z = points[:, 1], points[:, 2]
    cy, cz, radius = fit_circle(y, z)
    anterior, inferior = -(y - cy), -(z - cz)
    angle = np.arctan2(inferior, anterior)  # 0 anterior, pi/2 distal, pi posterior
    angle = np.where(angle < -np.pi / 2, angle + 2 * np.pi, angle)  # posterior condyles continue past pi
    across = -medial_sign * points[:, 0]
    down = -(radius * angle)  # anterior at the top
    return _binned(
        "femur", across, down, thickness, bin_mm, "medial ← → lateral (mm)", "posterior ← arc → anterior (mm)"
    )


def fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares circle (Kasa): centre (cx, cy) and radius through points (x, y)."""
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    (p, q, r), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = p / 2, q / 2
    return float(cx), float(cy), float(np.sqrt(max(r + cx * cx + cy * cy, 1e-9)))


def _cartilage_vertices(surface: Surface, regions: tuple[int, ...]) -> tuple[np.ndarray | None, np.ndarray]:
    thickness = np.asarray(surface.point_data.get("thickness_mm", np.zeros(surface.n_points)), float)
    region = np.asarray(surface.point_data.get("region", np.zeros(surface.n_points)))
    keep = np.isin(region, regions) & (thickness > 0)
    if not keep.any():
        return None, thickness[:0]
    return surface.points[keep], thickness[keep]


def _binned(bone: str, x, y, values, bin_mm: float, x_label: str, y_label: str) -> FlatMap:
    """Thickness on a square grid: the mean of the vertices within ``REACH`` bins of each cell centre (NaN when
    none), so a sparse mesh leaves no speckle while real gaps (the notch between the condyles) stay empty.
    Rows run from the largest y (top) down."""
    from scipy.spatial import cKDTree

    x_edges = np.arange(np.floor(x.min() / bin_mm) * bin_mm, x.max() + bin_mm, bin_mm)
    y_edges = np.arange(np.floor(y.min() / bin_mm) * bin_mm, y.max() + bin_mm, bin_mm)
    cx, cy = (x_edges[:-1] + x_edges[1:]) / 2, (y_edges[:-1] + y_edges[1:]) / 2
    gy, gx = np.meshgrid(cy[::-1], cx, indexing="ij")
    distance, index = cKDTree(np.column_stack([x, y])).query(
        np.column_stack([gx.ravel(), gy.ravel()]), k=NEIGHBOURS, distance_upper_bound=REACH * bin_mm
    )
    found = np.isfinite(distance)
    padded = np.append(np.asarray(values, float), np.nan)  # query returns len(values) for "not found"
    total = np.where(found, padded[np.minimum(index, len(values))], 0.0).sum(axis=1)
    count = found.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan).reshape(gx.shape)
    extent = (float(x_edges[0]), float(x_edges[-1]), float(y_edges[0]), float(y_edges[-1]))
    return FlatMap(bone, mean, extent, x_label, y_label, len(values))
