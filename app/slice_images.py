"""Slice pictures for the page: overlays in three planes and the colour legend.

Slices are shown in radiological convention from an LPS-oriented copy of the volumes: axial seen from the feet
(patient right on the left of the screen, anterior up), coronal seen from the front, sagittal with anterior on the
left; superior is up in both. Pixels are stretched to physical aspect, so anisotropic voxels look right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline import labels as L
from pipeline.report.slices import PLANES, label_lut, overlay_rgb, pixel_mm, to_lps_array, window
from pipeline.report.slices import take_slice as _take
from pipeline.volume import Volume

__all__ = ["PLANES", "SliceStack", "build_stack", "label_lut", "render_slice", "to_lps_array", "window"]
DISPLAY_MM_PER_PIXEL = 0.35


@dataclass(frozen=True)
class SliceStack:
    """Image, labels and optional T2 map on one LPS-oriented grid (array [S, P, L]), ready for slicing."""

    image: np.ndarray | None  # float32, windowed to [0, 1]
    labels: np.ndarray | None  # uint8 canonical (or subregion) labels
    t2: np.ndarray | None  # float32 ms, 0 where invalid
    spacing_spl: tuple[float, float, float]  # mm along S, P, L array axes

    @property
    def shape(self) -> tuple[int, int, int]:
        ref = next(a for a in (self.image, self.labels, self.t2) if a is not None)
        return ref.shape

    def n_slices(self, plane: str) -> int:
        return self.shape[{"axial": 0, "coronal": 1, "sagittal": 2}[plane]]


def build_stack(image: Volume | None, labels: Volume | None, t2map: Volume | None = None) -> SliceStack:
    arrays, spacing = {}, None
    for key, volume in (("image", image), ("labels", labels), ("t2", t2map)):
        if volume is not None:
            arrays[key], spacing = to_lps_array(volume)
    if "image" in arrays:
        arrays["image"] = window(arrays["image"])
    return SliceStack(arrays.get("image"), arrays.get("labels"), arrays.get("t2"), spacing or (1.0, 1.0, 1.0))


def render_slice(
    stack: SliceStack, plane: str, index: int, *, opacity: float = 0.5, overlay: str = "labels", t2_max_ms: float = 80.0
) -> np.ndarray:
    """RGB uint8 picture of one slice, stretched to physical aspect."""
    from matplotlib import colormaps
    from PIL import Image

    index = int(np.clip(index, 0, stack.n_slices(plane) - 1))
    base = _take(stack.image, plane, index) if stack.image is not None else None
    shape = (
        base if base is not None else _take(stack.labels if stack.labels is not None else stack.t2, plane, index)
    ).shape
    rgb = np.repeat((base if base is not None else np.zeros(shape, np.float32))[..., None], 3, axis=2)
    if overlay == "t2" and stack.t2 is not None:
        t2 = _take(stack.t2, plane, index)
        colours = colormaps["magma"](np.clip(t2 / t2_max_ms, 0, 1))
        alpha = (t2 > 0) * opacity
        rgb = rgb * (1 - alpha[..., None]) + colours[..., :3] * alpha[..., None]
    elif stack.labels is not None and opacity > 0:
        rgb = overlay_rgb(rgb[..., 0], _take(stack.labels, plane, index), opacity)
    picture = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    row_mm, col_mm = pixel_mm(stack.spacing_spl, plane)
    size = (
        max(1, round(shape[1] * col_mm / DISPLAY_MM_PER_PIXEL)),
        max(1, round(shape[0] * row_mm / DISPLAY_MM_PER_PIXEL)),
    )
    return np.asarray(picture.resize(size, Image.Resampling.BILINEAR))


def legend_html(present: set[str] | None = None) -> str:
    items = []
    for name in L.STRUCTURES:
        if present is not None and name not in present:
            continue
        r, g, b = L.COLOURS[name]
        items.append(
            f'<span style="display:inline-block;margin:2px 10px 2px 0"><span style="display:inline-block;width:12px;'
            f'height:12px;background:rgb({r},{g},{b});margin-right:4px;vertical-align:middle"></span>'
            f"{L.structure_display_name(name)}</span>"
        )
    return '<div id="legend">' + "".join(items) + "</div>"
