"""Slice pictures for the page: overlays in three planes, their window, and the colour legends.

Slices are shown in radiological convention from an LPS-oriented copy of the volumes: axial seen from the feet
(patient right on the left of the screen, anterior up), coronal seen from the front, sagittal with anterior on the
left; superior is up in both (``pipeline.report.slices.EDGE_LETTERS`` names each edge). Pixels are stretched to
physical aspect, so anisotropic voxels look right.

The T2 overlay is drawn only inside the cartilage of the label map (the fit is meaningless elsewhere), over the fixed
range of ``pipeline.report.colour_scales.T2_DISPLAY_MS``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from pipeline import labels as L
from pipeline.report.colour_scales import ColourScale, t2_scale
from pipeline.report.slices import (
    PLANES,
    SliceLocations,
    label_lut,
    overlay_rgb,
    pixel_mm,
    slice_locations,
    to_lps_array,
    window,
)
from pipeline.report.slices import take_slice as _take
from pipeline.volume import Volume

__all__ = ["PLANES", "SliceStack", "build_stack", "label_lut", "render_slice", "to_lps_array", "window"]
DISPLAY_MM_PER_PIXEL = 0.35
#: Label values drawn under the T2 overlay: the cartilages, and the femoral subregions a subregion map uses.
CARTILAGE_VALUES = tuple(L.CANONICAL[c] for c in L.CARTILAGES) + tuple(L.FEMORAL_SUBREGIONS.values())
#: Window (level, width) as fractions of the automatic window (1st to 99.5th percentile): (0.5, 1.0) is that window.
AUTO_WINDOW = (0.5, 1.0)


@dataclass(frozen=True)
class SliceStack:
    """Image, labels and optional T2 map on one LPS-oriented grid (array [S, P, L]), ready for slicing."""

    image: np.ndarray | None  # float32, windowed to [0, 1]
    labels: np.ndarray | None  # uint8 canonical (or subregion) labels
    t2: np.ndarray | None  # float32 ms, 0 where invalid
    spacing_spl: tuple[float, float, float]  # mm along S, P, L array axes
    locations: SliceLocations | None = None  # where each slice lies (mm, DICOM image number)
    side: str | None = None  # the knee's side, when known

    @property
    def shape(self) -> tuple[int, int, int]:
        ref = next(a for a in (self.image, self.labels, self.t2) if a is not None)
        return ref.shape

    def n_slices(self, plane: str) -> int:
        return self.shape[{"axial": 0, "coronal": 1, "sagittal": 2}[plane]]


def build_stack(
    image: Volume | None, labels: Volume | None, t2map: Volume | None = None, *, side: str | None = None
) -> SliceStack:
    arrays, spacing = {}, None
    for key, volume in (("image", image), ("labels", labels), ("t2", t2map)):
        if volume is not None:
            arrays[key], spacing = to_lps_array(volume)
    if "image" in arrays:
        arrays["image"] = window(arrays["image"])
    reference = image if image is not None else labels
    locations = slice_locations(reference) if reference is not None else None
    return SliceStack(
        arrays.get("image"),
        arrays.get("labels"),
        arrays.get("t2"),
        spacing or (1.0, 1.0, 1.0),
        locations,
        side if side in ("left", "right") else None,
    )


def render_slice(
    stack: SliceStack,
    plane: str,
    index: int,
    *,
    opacity: float = 0.5,
    overlay: str = "labels",
    level_width: tuple[float, float] = AUTO_WINDOW,
    t2: ColourScale | None = None,
) -> np.ndarray:
    """RGB uint8 picture of one slice, stretched to physical aspect.

    Args:
        overlay: "labels" (structure colours) or "t2" (T2 in ms, inside the cartilage only).
        level_width: the grey window as fractions of the automatic one (level 0.5, width 1.0 = automatic).
    """
    from matplotlib import colormaps
    from PIL import Image

    index = int(np.clip(index, 0, stack.n_slices(plane) - 1))
    base = _take(stack.image, plane, index) if stack.image is not None else None
    shape = (
        base if base is not None else _take(stack.labels if stack.labels is not None else stack.t2, plane, index)
    ).shape
    grey = _windowed(base, level_width) if base is not None else np.zeros(shape, np.float32)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if overlay == "t2" and stack.t2 is not None:
        scale = t2 or t2_scale()
        values = _take(stack.t2, plane, index)
        inside = np.isfinite(values) & (values > 0)
        if stack.labels is not None:
            inside &= np.isin(_take(stack.labels, plane, index), CARTILAGE_VALUES)
        colours = colormaps[scale.cmap](np.clip((values - scale.vmin) / (scale.vmax - scale.vmin), 0, 1))
        alpha = inside * opacity
        rgb = rgb * (1 - alpha[..., None]) + colours[..., :3] * alpha[..., None]
    elif stack.labels is not None and opacity > 0:
        rgb = overlay_rgb(grey, _take(stack.labels, plane, index), opacity)
    picture = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    row_mm, col_mm = pixel_mm(stack.spacing_spl, plane)
    size = (
        max(1, round(shape[1] * col_mm / DISPLAY_MM_PER_PIXEL)),
        max(1, round(shape[0] * row_mm / DISPLAY_MM_PER_PIXEL)),
    )
    return np.asarray(picture.resize(size, Image.Resampling.BILINEAR))


def _windowed(grey: np.ndarray, level_width: tuple[float, float]) -> np.ndarray:
    level, width = level_width
    if (level, width) == AUTO_WINDOW:
        return grey
    width = max(float(width), 0.02)
    return np.clip((grey - (level - width / 2)) / width, 0, 1)


def legend_html(present: set[str] | None = None) -> str:
    """The structures' overlay colours (those ``present``, or all)."""
    items = []
    for name in L.STRUCTURES:
        if present is not None and name not in present:
            continue
        r, g, b = L.COLOURS[name]
        items.append(
            f'<span class="ks-swatch"><span style="background:rgb({r},{g},{b})"></span>'
            f"{L.structure_display_name(name)}</span>"
        )
    return '<div id="legend" class="ks-legend" data-overlay="labels">' + "".join(items) + "</div>"


def colour_bar_html(scale: ColourScale, *, element_id: str = "", note: str = "") -> str:
    """A colour bar as HTML (gradient, ticks, title with unit): crisp at any size, never clipped."""
    ticks = "".join(
        f'<span style="left:{100 * (t - scale.vmin) / (scale.vmax - scale.vmin):.1f}%">{t:g}</span>'
        for t in scale.ticks()
    )
    ident = f' id="{element_id}"' if element_id else ""
    extra = f'<div class="ks-bar-note">{html.escape(note)}</div>' if note else ""
    return (
        f'<div class="ks-colourbar"{ident} data-unit="{html.escape(scale.unit)}">'
        f'<div class="ks-bar-title">{html.escape(scale.label)}</div>'
        f'<div class="ks-bar" style="background:{scale.css_gradient()}"></div>'
        f'<div class="ks-ticks">{ticks}</div>{extra}</div>'
    )


def t2_legend_html() -> str:
    """The legend under the slices while the T2 overlay is shown: the T2 scale in ms (cartilage only)."""
    scale = t2_scale("T2 inside the cartilage")
    note = (
        f"Fixed range {scale.vmin:g}–{scale.vmax:g} ms; values outside are drawn at the ends. "
        "Drawn inside the cartilage only."
    )
    return (
        '<div id="legend" class="ks-legend" data-overlay="t2">'
        + colour_bar_html(scale, element_id="t2-scale", note=note)
        + "</div>"
    )
