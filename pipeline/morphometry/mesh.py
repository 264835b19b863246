"""Surfaces from label maps, in patient millimetres.

Recipe per structure: crop to the structure, Gaussian-smooth the binary mask (physical variance), marching cubes
at 0.5 (the smoothed mask's half level sits on the voxel boundary, so thin cartilage is not shrunk), map the
vertices through the image's index-to-LPS transform, decimate to a vertex budget with quadric simplification
(shape-preserving), drop degenerate faces, and orient faces outward.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..volume import Volume, bounding_box, grown_box


@dataclass(frozen=True)
class Surface:
    """A triangle surface in LPS mm with optional per-vertex arrays (e.g. thickness_mm, region)."""

    name: str
    points: np.ndarray  # (N, 3) float64, LPS mm
    faces: np.ndarray  # (M, 3) int64, outward (counter-clockwise seen from outside)
    point_data: dict = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        return len(self.points)

    def with_point_data(self, **arrays: np.ndarray) -> Surface:
        for key, values in arrays.items():
            if len(values) != self.n_points:
                raise ValueError(f"{key}: {len(values)} values for {self.n_points} points")
        return Surface(self.name, self.points, self.faces, {**self.point_data, **arrays})

    def vertex_normals(self) -> np.ndarray:
        """Area-weighted unit vertex normals, (N, 3)."""
        tri = self.points[self.faces]
        face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
        normals = np.zeros_like(self.points)
        for corner in range(3):
            np.add.at(normals, self.faces[:, corner], face_normals)
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        return normals / np.maximum(length, 1e-12)

    def vertex_areas(self) -> np.ndarray:
        """Surface area (mm^2) each vertex stands for: a third of each adjacent triangle, (N,)."""
        tri = self.points[self.faces]
        face_area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1) / 2
        areas = np.zeros(self.n_points)
        for corner in range(3):
            np.add.at(areas, self.faces[:, corner], face_area / 3)
        return areas

    def signed_volume_mm3(self) -> float:
        tri = self.points[self.faces]
        return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)

    def to_vtk(self):
        """A ``vtkPolyData`` copy (points, triangles, every point array; the first array the active scalars, as
        pyvista makes it), built with VTK alone: writing a mesh file needs no pyvista import."""
        from vtkmodules.util.numpy_support import numpy_to_vtk
        from vtkmodules.vtkCommonCore import vtkPoints, vtkTypeInt64Array
        from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

        int64 = vtkTypeInt64Array().GetDataType()  # 64-bit offsets and connectivity, as pyvista stores them
        points = vtkPoints()
        points.SetData(numpy_to_vtk(np.ascontiguousarray(self.points, dtype=np.float64), deep=True))
        cells = vtkCellArray()
        cells.SetData(
            numpy_to_vtk(np.arange(0, 3 * len(self.faces) + 1, 3, dtype=np.int64), deep=True, array_type=int64),
            numpy_to_vtk(np.ascontiguousarray(self.faces, dtype=np.int64).ravel(), deep=True, array_type=int64),
        )
        polydata = vtkPolyData()
        polydata.SetPoints(points)
        polydata.SetPolys(cells)
        point_data = polydata.GetPointData()
        for name, values in self.point_data.items():
            values = np.asarray(values)
            array = numpy_to_vtk(np.ascontiguousarray(values.view(np.uint8) if values.dtype == bool else values), True)
            array.SetName(name)
            point_data.AddArray(array)
            if point_data.GetScalars() is None:
                point_data.SetActiveScalars(name)
        return polydata

    def to_pyvista(self):
        """The same mesh as a pyvista ``PolyData`` (interactive views)."""
        import pyvista as pv

        return pv.wrap(self.to_vtk())


def surface_from_mask(
    volume: Volume, mask: np.ndarray, *, name: str, smoothing_var_mm2: float, target_vertices: int
) -> Surface | None:
    """Closed surface of ``mask`` (numpy order, volume's grid) in LPS mm; None if the mask is empty."""
    from scipy import ndimage
    from skimage.measure import marching_cubes

    box = bounding_box(mask)
    if box is None:
        return None
    sigma = [np.sqrt(smoothing_var_mm2) / s for s in volume.spacing[::-1]]
    pad = [int(np.ceil(3 * sg)) + 2 for sg in sigma]
    around = grown_box(box, pad, mask.shape)
    lo = np.array([s.start for s in around])
    crop = mask[around].astype(np.float32)
    crop = np.pad(crop, [(p, p) for p in pad])  # zero border so every surface closes, even at the field's edge
    smoothed = ndimage.gaussian_filter(crop, sigma) if smoothing_var_mm2 > 0 else crop
    if smoothed.max() < 0.5:  # a structure thinner than the smoothing kernel
        smoothed = crop
    verts_kji, faces, _, _ = marching_cubes(smoothed, level=0.5, allow_degenerate=False)
    verts_kji += lo - np.array(pad)
    points = volume.index_to_physical(verts_kji[:, ::-1])
    faces = faces.astype(np.int64)
    target = min(target_vertices, vertices_for_area(_area_mm2(points, faces), volume.spacing)) if target_vertices else 0
    points, faces = _decimate(points, faces, target)
    surface = _clean(Surface(name, points, faces))
    if surface.signed_volume_mm3() < 0:  # mirrored grids (negative determinant) reverse the winding
        surface = Surface(name, surface.points, surface.faces[:, ::-1].copy())
    return surface


def vertices_for_area(area_mm2: float, spacing: tuple[float, float, float]) -> int:
    """How many vertices a surface of this area gets: one per voxel face (the geometric mean face area).

    Marching cubes puts a vertex on every grid edge a surface crosses, so a surface oblique to the grid gets up to
    sqrt(3) times the vertices of the same surface aligned with it. Decimating every surface to one vertex per
    voxel-face area (capped by the structure's budget) makes the count depend on the anatomy, not on how the
    knee lies in the scanner.
    """
    face_mm2 = float(np.prod(spacing)) ** (2.0 / 3.0)
    return max(4, round(area_mm2 / face_mm2))


def _area_mm2(points: np.ndarray, faces: np.ndarray) -> float:
    tri = points[faces]
    return float(np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum() / 2)


def _decimate(points: np.ndarray, faces: np.ndarray, target_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    import fast_simplification

    if target_vertices <= 0 or len(points) <= target_vertices:
        return points, faces
    reduction = 1.0 - target_vertices / len(points)
    new_points, new_faces = fast_simplification.simplify(points.astype(np.float32), faces, target_reduction=reduction)
    return new_points.astype(np.float64), new_faces.astype(np.int64)


def _clean(surface: Surface) -> Surface:
    """Drop zero-area faces and unreferenced vertices."""
    tri = surface.points[surface.faces]
    area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    faces = surface.faces[area2 > 1e-10]
    used = np.unique(faces)
    remap = np.full(len(surface.points), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return Surface(surface.name, surface.points[used], remap[faces], {})


def open_edge_count(surface: Surface) -> int:
    """Edges used by exactly one face (0 for a closed surface)."""
    edges = np.sort(
        np.concatenate([surface.faces[:, [0, 1]], surface.faces[:, [1, 2]], surface.faces[:, [2, 0]]]), axis=1
    )
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return int((counts == 1).sum())
