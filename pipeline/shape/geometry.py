"""Triangle-mesh geometry for the shape model: point-to-surface distance, ASSD, mirroring, femur clipping.

Meshes are plain arrays: ``points`` (N, 3) float64 and ``faces`` (M, 3) int64, outward-oriented (counter-clockwise
seen from outside). Units are whatever the points are in (patient mm or model units); the functions do not care.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

_QUERY_CHUNK = 8_192  # query points per outer block
_TRIANGLES_PER_BLOCK = 131_072  # point-triangle pairs per vectorised evaluation (~50 MB of temporaries)
_MAX_K = 1024  # largest candidate round before the per-point ball search


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", a, b)


def closest_point_on_triangles(
    p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Closest point to ``p`` on each triangle (a, b, c), all (..., 3), by Voronoi regions (Ericson 2005, §5.1.5).

    Returns the closest points (..., 3) and a bool mask (...) that is True where the closest point lies strictly
    inside the face (not on an edge or vertex), where the face normal alone decides the side.
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = _dot(ab, ap), _dot(ac, ap)
    bp, cp = p - b, p - c
    d3, d4 = _dot(ab, bp), _dot(ac, bp)
    d5, d6 = _dot(ab, cp), _dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2

    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v_in, w_in = vb / denom, vc / denom
        t_ab, t_ac = d1 / (d1 - d3), d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    # Regions in Ericson's priority order; np.select takes the first true condition.
    conditions = [
        (d1 <= 0) & (d2 <= 0),  # vertex a
        (d3 >= 0) & (d4 <= d3),  # vertex b
        (d6 >= 0) & (d5 <= d6),  # vertex c
        (vc <= 0) & (d1 >= 0) & (d3 <= 0),  # edge ab
        (vb <= 0) & (d2 >= 0) & (d6 <= 0),  # edge ac
        (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0),  # edge bc
    ]
    choices = [a, b, c, a + t_ab[..., None] * ab, a + t_ac[..., None] * ac, b + t_bc[..., None] * (c - b)]
    interior = ~np.any(conditions, axis=0) & np.isfinite(v_in) & np.isfinite(w_in)
    face_point = a + v_in[..., None] * ab + w_in[..., None] * ac
    stacked = [np.broadcast_to(m[..., None], choices[0].shape) for m in conditions]
    closest = np.select(stacked, choices, default=np.where(interior[..., None], face_point, a))
    return closest, interior


@dataclass(frozen=True)
class SurfaceQuery:
    """Per query point: unsigned ``distance`` (N,), ``closest`` point (N, 3), ``sign`` (N,) +1 outside / -1 inside."""

    distance: np.ndarray
    closest: np.ndarray
    sign: np.ndarray

    @property
    def signed(self) -> np.ndarray:
        return self.distance * self.sign


def _face_samples(tri: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Points covering every face: its centroid, or for a face larger than ``radius`` the centroids of its regular
    n x n subdivision (each sub-triangle is the face scaled by 1/n, so its centroid is within R_f / n of all of it).

    Returns samples (S, 3), their face index (S,), and the coverage radius: every point of a face lies within it of
    one of that face's samples.
    """
    centroids = tri.mean(axis=1)
    face_radius = np.linalg.norm(tri - centroids[:, None], axis=2).max(axis=1)
    splits = np.maximum(np.ceil(face_radius / radius), 1).astype(int)
    samples, owners = [centroids[splits == 1]], [np.flatnonzero(splits == 1)]
    for n in np.unique(splits[splits > 1]):
        faces = np.flatnonzero(splits == n)
        i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        up = (i + j <= n - 1).ravel()
        down = (i + j <= n - 2).ravel()
        u = np.concatenate([(i.ravel()[up] + 1 / 3) / n, (i.ravel()[down] + 2 / 3) / n])
        v = np.concatenate([(j.ravel()[up] + 1 / 3) / n, (j.ravel()[down] + 2 / 3) / n])
        a, b, c = (tri[faces, m][:, None] for m in range(3))
        samples.append((a + u[None, :, None] * (b - a) + v[None, :, None] * (c - a)).reshape(-1, 3))
        owners.append(np.repeat(faces, len(u)))
    coverage = float((face_radius / splits).max())
    return np.concatenate(samples), np.concatenate(owners), coverage


class MeshDistance:
    """Exact point-to-triangle-mesh distance with a k-d tree of points covering the faces.

    Each face is covered by samples (its centroid, or sub-triangle centroids for large faces) such that every point
    of it lies within the coverage radius r of one of its samples. A face can then only beat the best candidate
    distance d* if one of its samples lies within d* + r of the query, so the faces of the k nearest samples are
    provably enough whenever the k-th sample is farther than that; other queries take larger k, then a ball search.
    The sign comes from the outward normal at the closest point: the face normal inside a face, else the sum of the
    unit normals of all candidate faces that touch the closest edge/vertex (a pseudo-normal), so it needs
    consistently outward faces but no closed surface.
    """

    def __init__(self, points: np.ndarray, faces: np.ndarray, *, k: int = 16) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        self.faces = np.asarray(faces, dtype=np.int64)
        if len(self.faces) == 0:
            raise ValueError("cannot measure distances to a mesh without faces")
        tri = self.points[self.faces]
        self._tri = tri
        # Cover large faces more densely so decimated meshes with a few big triangles keep a tight bound.
        typical = np.median(np.linalg.norm(tri - tri.mean(axis=1)[:, None], axis=2).max(axis=1))
        samples, self._owner, self._radius = _face_samples(tri, 2.0 * float(typical) or 1.0)
        self._tree = cKDTree(samples)
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        self._normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)
        self._k = int(min(k, len(samples)))
        self._tol = 1e-9 * float(np.ptp(self.points, axis=0).max() or 1.0)

    def query(self, x: np.ndarray, *, exact: bool = True, max_distance: float | None = None) -> SurfaceQuery:
        """Distances from points ``x`` (N, 3) to the surface.

        Args:
            exact: False checks only the k nearest face centroids: exact near the surface (where that set is provably
                complete), approximate far from it, and much cheaper there (a far query would otherwise test most
                faces).
            max_distance: points provably farther than this get an upper bound > max_distance and the sign of the
                best candidate instead of the exact values (enough for clamped SDF targets).
        """
        x = np.asarray(x, dtype=np.float64).reshape(-1, 3)
        parts = [
            self._query_chunk(x[i : i + _QUERY_CHUNK], exact, max_distance) for i in range(0, len(x), _QUERY_CHUNK)
        ]
        if not parts:
            return SurfaceQuery(np.zeros(0), np.zeros((0, 3)), np.ones(0))
        return SurfaceQuery(*(np.concatenate(arrays) for arrays in zip(*parts, strict=True)))

    def _query_chunk(
        self, x: np.ndarray, exact: bool, max_distance: float | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        distance, closest, sign = np.full(len(x), np.inf), np.zeros((len(x), 3)), np.ones(len(x))
        todo, k = np.arange(len(x)), self._k
        while len(todo):
            # Rounds of growing k: far-from-surface queries need more centroids to be provably complete.
            block = max(1, _TRIANGLES_PER_BLOCK // k)
            unsure = [
                self._round(x, todo[i : i + block], k, distance, closest, sign, max_distance)
                for i in range(0, len(todo), block)
            ]
            todo = np.concatenate(unsure)
            if not exact or k >= min(self._tree.n, _MAX_K):
                break
            k = min(4 * k, self._tree.n)
        if exact:
            for i in todo:  # rare: very far queries, or meshes with a few very large faces
                ball = np.asarray(self._tree.query_ball_point(x[i], distance[i] + self._radius), dtype=np.int64)
                d, q, s = self._evaluate(x[i : i + 1], np.unique(self._owner[ball])[None])
                distance[i], closest[i], sign[i] = d[0], q[0], s[0]
        return distance, closest, sign

    def _round(
        self,
        x: np.ndarray,
        index: np.ndarray,
        k: int,
        distance: np.ndarray,
        closest: np.ndarray,
        sign: np.ndarray,
        max_distance: float | None,
    ) -> np.ndarray:
        """Evaluate the k nearest faces for ``x[index]`` in place; return the indices not yet provably exact."""
        sample_dist, nearest = self._tree.query(x[index], k=k)
        sample_dist, nearest = sample_dist.reshape(len(index), k), nearest.reshape(len(index), k)
        d, q, s = self._evaluate(x[index], self._owner[nearest])
        distance[index], closest[index], sign[index] = d, q, s
        if k >= self._tree.n:
            return index[:0]
        bound = sample_dist[:, -1] - self._radius  # no face without a sample among the k is closer than this
        unsure = bound < d
        if max_distance is not None:
            unsure &= ~((d > max_distance) & (bound >= max_distance))
        return index[unsure]

    def _evaluate(self, x: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tri = self._tri[candidates]  # (n, k, 3, 3)
        p = np.broadcast_to(x[:, None], (*tri.shape[:2], 3))
        closest, interior = closest_point_on_triangles(p, tri[:, :, 0], tri[:, :, 1], tri[:, :, 2])
        dist = np.linalg.norm(closest - p, axis=2)
        best = dist.argmin(axis=1)
        rows = np.arange(len(x))
        best_dist, best_point = dist[rows, best], closest[rows, best]
        # Pseudo-normal: faces whose closest point coincides with the best one (shared edge/vertex) vote together.
        tied = np.linalg.norm(closest - best_point[:, None], axis=2) <= self._tol
        normal = np.einsum("nk,nkj->nj", tied.astype(np.float64), self._normals[candidates])
        use_face = interior[rows, best]
        normal[use_face] = self._normals[candidates[rows, best]][use_face]
        sign = np.where(_dot(x - best_point, normal) < 0, -1.0, 1.0)
        return best_dist, best_point, sign


def assd(points_a: np.ndarray, faces_a: np.ndarray, points_b: np.ndarray, faces_b: np.ndarray) -> float:
    """Average symmetric surface distance: pooled mean of vertex-to-surface distances in both directions."""
    d_ab = MeshDistance(points_b, faces_b).query(points_a).distance
    d_ba = MeshDistance(points_a, faces_a).query(points_b).distance
    return float((d_ab.sum() + d_ba.sum()) / (len(d_ab) + len(d_ba)))


def signed_volume(points: np.ndarray, faces: np.ndarray) -> float:
    """Signed enclosed volume (positive for outward faces of a closed surface)."""
    tri = points[faces]
    return float(_dot(tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def orient_outward(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces with the winding flipped if the surface encloses a negative volume (e.g. after a reflection).

    Measured about the centroid, so a small hole (an open, clipped end) barely affects the sign.
    """
    return faces[:, ::-1].copy() if signed_volume(points - points.mean(axis=0), faces) < 0 else faces


def mirror_x(points: np.ndarray, centre_x: float) -> np.ndarray:
    """Reflect about the plane x = centre_x (x -> 2c - x). The caller must reverse face winding."""
    mirrored = np.array(points, dtype=np.float64, copy=True)
    mirrored[:, 0] = 2.0 * centre_x - mirrored[:, 0]
    return mirrored


def femur_clip_height(points: np.ndarray) -> float:
    """z below which the femur is kept (upstream ``clip_femur_top``, model-formats §1.8 step 5).

    With the extents dx, dy, dz of the vertices: if dz > 0.7 dy the cut is at z_min + 0.7 dx (sic: dx, as
    upstream), otherwise at z_min + 0.95 dz.
    """
    lo, hi = points.min(axis=0), points.max(axis=0)
    dx, dy, dz = hi - lo
    return float(lo[2] + (0.7 * dx if dz > 0.7 * dy else 0.95 * dz))


def clip_below(points: np.ndarray, faces: np.ndarray, z_cut: float) -> tuple[np.ndarray, np.ndarray]:
    """The part of the mesh with z <= z_cut; triangles crossing the plane are cut exactly (open boundary left)."""
    from trimesh.intersections import slice_faces_plane

    new_points, new_faces, _ = slice_faces_plane(points, faces, np.array([0.0, 0.0, -1.0]), np.array([0, 0, z_cut]))
    return remove_unreferenced(np.asarray(new_points, dtype=np.float64), np.asarray(new_faces, dtype=np.int64))


def remove_unreferenced(points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop vertices no face uses and renumber the faces."""
    used = np.unique(faces)
    remap = np.full(len(points), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return points[used], remap[faces]


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 homogeneous transform to points (N, 3)."""
    return points @ matrix[:3, :3].T + matrix[:3, 3]
