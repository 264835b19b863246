"""Slices of a volume in radiological display convention, shared by the app's slice viewer and the PDF report.

Volumes are first reoriented (axis permutation/flip only, no resampling) to LPS index axes: array [S, P, L].
Then axial is seen from the feet (patient right on the left of the screen, anterior up), coronal from the front,
sagittal with anterior on the left; superior is up in both.
"""

from __future__ import annotations

import numpy as np

from .. import labels as L
from ..volume import Volume

PLANES = ("axial", "coronal", "sagittal")


def to_lps_array(volume: Volume) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Axis-permuted/flipped copy with index axes i->L, j->P, k->S; returns array [S, P, L] and its spacing."""
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
