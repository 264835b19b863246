"""Slices of a volume in radiological display convention, shared by the app's slice viewer and the PDF report.

Volumes are first reoriented (axis permutation/flip only, no resampling) to LPS index axes: array [S, P, L].
Then axial is seen from the feet (patient right on the left of the screen, anterior up), coronal from the front,
sagittal with anterior on the left; superior is up in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import labels as L
from ..volume import Volume

PLANES = ("axial", "coronal", "sagittal")
#: The patient direction at each screen edge (top, bottom, left, right) of a slice from :func:`take_slice`.
EDGE_LETTERS = {
    "axial": ("A", "P", "R", "L"),
    "coronal": ("S", "I", "R", "L"),
    "sagittal": ("S", "I", "A", "P"),
}
#: The [S, P, L] array axis each plane's slice index runs along, and the LPS coordinate it moves (x=0, y=1, z=2).
PLANE_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}
_LPS_COORDINATE = {"axial": 2, "coronal": 1, "sagittal": 0}
#: The letters of a negative and a positive LPS coordinate along each plane's normal.
_POSITION_LETTERS = {"axial": ("I", "S"), "coronal": ("A", "P"), "sagittal": ("R", "L")}


def to_lps_array(volume: Volume) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The volume with index axes i->L, j->P, k->S (permuted and flipped, never resampled); returns array [S, P, L]
    (a numpy view of the volume's own array: no copy) and its spacing."""
    layout = lps_layout(volume)
    if layout is None:
        return _dicom_orient(volume)
    old = volume.array
    # numpy axis (2 - b) holds ITK axis b: the LPS grid's ITK axis a is the volume's ITK axis perm[a]
    array = old.transpose([2 - layout.perm[2], 2 - layout.perm[1], 2 - layout.perm[0]])
    for a in range(3):
        if layout.flip[a]:
            array = np.flip(array, axis=2 - a)
    spacing = tuple(float(volume.spacing[layout.perm[a]]) for a in (2, 1, 0))
    return array, spacing  # type: ignore[return-value]


@dataclass(frozen=True)
class LpsLayout:
    """How an LPS-ordered grid's ITK axis ``a`` (0 = L, 1 = P, 2 = S) is the volume's ITK axis ``perm[a]``, reversed
    where ``flip[a]``: what SimpleITK's DICOMOrient(..., "LPS") does, worked out from the direction cosines alone."""

    perm: tuple[int, int, int]
    flip: tuple[bool, bool, bool]

    def physical_points(self, volume: Volume, lps_index: np.ndarray) -> np.ndarray:
        """LPS mm of points given as continuous indices (N, 3; ITK order) of the LPS-ordered grid."""
        size = np.array(volume.size, float)
        old = np.empty_like(lps_index, dtype=float)
        for a in range(3):
            b = self.perm[a]
            old[:, b] = (size[b] - 1 - lps_index[:, a]) if self.flip[a] else lps_index[:, a]
        direction = np.asarray(volume.direction, float)
        return np.asarray(volume.origin, float) + (old * np.asarray(volume.spacing, float)) @ direction.T

    def lps_box(self, box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
        """A box (numpy index slices) of the volume's array of ``shape`` as a box of the [S, P, L] array."""
        out = []
        for a in (2, 1, 0):  # [S, P, L] numpy axis 2 - a holds the volume's ITK axis perm[a]
            axis = 2 - self.perm[a]
            start, stop = box[axis].start, box[axis].stop
            out.append(slice(shape[axis] - stop, shape[axis] - start) if self.flip[a] else slice(start, stop))
        return tuple(out)


def lps_layout(volume: Volume) -> LpsLayout | None:
    """The permutation and flips onto LPS index axes; None when an axis lies between two patient axes (about 45
    degrees oblique: then SimpleITK decides)."""
    direction = np.asarray(volume.direction, float)
    dominant = np.argmax(np.abs(direction), axis=0)  # the patient axis each index axis mostly runs along
    if sorted(int(d) for d in dominant) != [0, 1, 2]:
        return None
    magnitudes = np.sort(np.abs(direction), axis=0)
    if np.any(magnitudes[-1] - magnitudes[-2] < 1e-3):  # a near tie: leave the choice to SimpleITK
        return None
    perm = tuple(int(np.flatnonzero(dominant == a)[0]) for a in range(3))
    flip = tuple(bool(direction[a, perm[a]] < 0) for a in range(3))
    return LpsLayout(perm, flip)  # type: ignore[arg-type]


def _dicom_orient(volume: Volume) -> tuple[np.ndarray, tuple[float, float, float]]:
    import SimpleITK as sitk

    oriented = sitk.DICOMOrient(volume.to_sitk(), "LPS")
    spacing = oriented.GetSpacing()
    return sitk.GetArrayFromImage(oriented), (spacing[2], spacing[1], spacing[0])


def window(image: np.ndarray) -> np.ndarray:
    """Intensities scaled to [0, 1] between the 1st and 99.5th percentiles (sampled on large volumes)."""
    lo, hi = np.percentile(image[:: max(1, image.size // 2_000_000 + 1)], [1.0, 99.5]) if image.size else (0, 1)
    return np.clip((image.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)


def take_slice(array: np.ndarray, plane: str, index: int) -> np.ndarray:
    """2-D slice of an [S, P, L] array with screen rows top->bottom and columns left->right (module docstring)."""
    if plane == "axial":
        return array[index]  # rows anterior->posterior, columns right->left
    if plane == "coronal":
        return array[::-1, index, :]  # rows superior->inferior, columns right->left
    return array[::-1, :, index]  # sagittal: rows superior->inferior, columns anterior->posterior


def pixel_mm(spacing_spl: tuple[float, float, float], plane: str) -> tuple[float, float]:
    """(row, column) pixel size in mm of a slice from :func:`take_slice`."""
    s, p, l_ = spacing_spl
    return {"axial": (p, l_), "coronal": (s, l_), "sagittal": (s, p)}[plane]


def label_lut(alpha: float) -> np.ndarray:
    """RGBA (0-1) per label value: structure colours, femoral subregions in shades of the cartilage colour."""
    lut = np.zeros((256, 4), dtype=np.float32)
    for name, value in L.CANONICAL.items():
        lut[value, :3] = np.array(L.COLOURS[name]) / 255
        lut[value, 3] = alpha
    for i, value in enumerate(L.FEMORAL_SUBREGIONS.values()):
        lut[value, :3] = np.array([(70 + 40 * i) % 256, 150 + 20 * (i % 3), 230 - 25 * i]) / 255
        lut[value, 3] = alpha
    return lut


def overlay_rgb(base: np.ndarray | None, labels: np.ndarray, opacity: float) -> np.ndarray:
    """RGB float (0-1) picture: a windowed grey slice (black when None) under the label colours."""
    grey = base if base is not None else np.zeros(labels.shape, np.float32)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgba = label_lut(opacity)[labels]
    return np.clip(rgb * (1 - rgba[..., 3:]) + rgba[..., :3] * rgba[..., 3:], 0, 1)


@dataclass(frozen=True)
class SliceLocations:
    """Where each slice of the [S, P, L] array lies, in words a viewer can find: the position in mm along the
    plane's normal (patient coordinates, "L 12.3 mm") and, for the plane a DICOM series was acquired in, the
    InstanceNumber of the file holding that slice (what PACS viewers show as the image number)."""

    positions_mm: dict[str, np.ndarray]  # plane -> LPS coordinate of each slice index
    instance_numbers: dict[str, list[int | None]]  # plane -> InstanceNumber per slice index (acquisition plane)

    def describe(self, plane: str, index: int) -> str:
        """e.g. "L 12.3 mm · image 69" (image number only in the acquisition plane of a DICOM series)."""
        value = float(self.positions_mm[plane][index])
        negative, positive = _POSITION_LETTERS[plane]
        text = f"{positive if value >= 0 else negative} {abs(value):.1f} mm"
        numbers = self.instance_numbers.get(plane)
        if numbers and numbers[index] is not None:
            text += f" · image {numbers[index]}"
        return text


def slice_locations(volume: Volume) -> SliceLocations:
    """The :class:`SliceLocations` of ``volume`` as :func:`to_lps_array` lays it out."""
    layout = lps_layout(volume)
    if layout is None:
        return _oriented_slice_locations(volume)
    size = [volume.size[layout.perm[a]] for a in range(3)]  # the LPS grid's (L, P, S) sizes
    positions, numbers = {}, {}
    for plane, array_axis in PLANE_AXIS.items():
        itk_axis = 2 - array_axis
        index = np.tile([(n - 1) / 2 for n in size], (size[itk_axis], 1))
        index[:, itk_axis] = np.arange(size[itk_axis])
        points = layout.physical_points(volume, index)
        positions[plane] = points[:, _LPS_COORDINATE[plane]]
        numbers[plane] = _instance_numbers(volume, plane, points)
    return SliceLocations(positions, numbers)


def _oriented_slice_locations(volume: Volume) -> SliceLocations:
    """:func:`slice_locations` through SimpleITK's DICOMOrient, for volumes about 45 degrees oblique."""
    import SimpleITK as sitk

    oriented = sitk.DICOMOrient(volume.to_sitk(), "LPS")
    size = oriented.GetSize()  # (L, P, S) index order
    centre = [(n - 1) / 2 for n in size]
    positions, numbers = {}, {}
    for plane, array_axis in PLANE_AXIS.items():
        itk_axis = 2 - array_axis
        coords = []
        for index in range(size[itk_axis]):
            point = list(centre)
            point[itk_axis] = index
            coords.append(oriented.TransformContinuousIndexToPhysicalPoint(point))
        points = np.array(coords, float).reshape(-1, 3)
        positions[plane] = points[:, _LPS_COORDINATE[plane]]
        numbers[plane] = _instance_numbers(volume, plane, points)
    return SliceLocations(positions, numbers)


def _instance_numbers(volume: Volume, plane: str, points: np.ndarray) -> list[int | None]:
    """InstanceNumber of the DICOM file through each slice centre, when ``plane`` is the series' acquisition plane
    (its files' normal along the plane's normal); empty otherwise (a reformatted plane has no file of its own)."""
    source = getattr(volume, "source", None)
    if source is None or not getattr(source, "echoes", None):
        return []
    headers = [h for h in source.echoes[0].headers if getattr(h, "ImagePositionPatient", None) is not None]
    first = headers[0] if headers else None
    orientation = getattr(first, "ImageOrientationPatient", None)
    if orientation is None:
        return []
    row, col = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row, col)
    if abs(normal[_LPS_COORDINATE[plane]]) < 0.9:
        return []
    file_positions = np.array([np.dot(normal, np.array(h.ImagePositionPatient, float)) for h in headers])
    spacing = float(np.median(np.abs(np.diff(np.sort(file_positions))))) if len(headers) > 1 else 1.0
    out: list[int | None] = []
    for point in points:
        distance = np.abs(file_positions - np.dot(normal, point))
        nearest = int(np.argmin(distance))
        number = getattr(headers[nearest], "InstanceNumber", None)
        out.append(int(number) if number is not None and distance[nearest] <= 0.5 * spacing + 1e-3 else None)
    return out
