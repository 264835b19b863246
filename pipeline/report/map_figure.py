"""The flattened femoral and tibial thickness maps drawn into a matplotlib figure: page 2 of the PDF report, and a
PNG of their own for the app's page (the same drawing, so the two always agree)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import labels as L
from .colour_scales import thickness_scale
from .thickness_maps import FlatMap, femoral_map, tibial_map

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .analysis_view import AnalysisView

MAP_TITLES = {"femur": "Femur, unrolled about the medial-lateral axis", "tibia": "Tibia, seen from above"}


def flat_maps(result: AnalysisView, side: str) -> dict[str, FlatMap | None]:
    """Both bones' flattened maps (None without measured cartilage); medial on the left of each."""
    sign = -1.0 if side == "left" else 1.0
    out: dict[str, FlatMap | None] = {}
    for bone, make in (("femur", femoral_map), ("tibia", tibial_map)):
        surface = result.surfaces.get(L.FEMUR if bone == "femur" else L.TIBIA)
        out[bone] = None if surface is None else make(surface, medial_sign=sign)
    return out


def map_note(side: str) -> str:
    return "Medial on the left of both maps; white = no cartilage measured. " + (
        f"Knee side: {side}." if side != "unknown" else "Knee side unknown: medial/lateral not decided."
    )


def draw_thickness_maps(
    fig: Figure,
    result: AnalysisView,
    side: str,
    *,
    axes: tuple[tuple[float, float, float, float], tuple[float, float, float, float]],
    colorbar: tuple[float, float, float, float],
    fontsize: float = 7,
) -> None:
    """The two maps into ``axes`` (figure fractions), with one shared colour bar at ``colorbar``."""
    scale = thickness_scale(result.config.thickness_colour_max_mm)
    image = None
    for rect, (bone, flat) in zip(axes, flat_maps(result, side).items(), strict=True):
        ax = fig.add_axes(rect)
        ax.set_title(MAP_TITLES[bone], fontsize=fontsize + 1)
        if flat is None:
            ax.text(0.5, 0.5, "no cartilage measured", ha="center", transform=ax.transAxes, fontsize=fontsize)
            ax.set_axis_off()
            continue
        image = ax.imshow(
            flat.values, extent=flat.extent, cmap=scale.cmap, vmin=scale.vmin, vmax=scale.vmax, interpolation="nearest"
        )
        ax.set_xlabel(flat.x_label, fontsize=fontsize)
        ax.set_ylabel(flat.y_label, fontsize=fontsize)
        ax.tick_params(labelsize=fontsize - 1)
    if image is not None:
        bar = fig.colorbar(image, cax=fig.add_axes(colorbar), orientation="horizontal")
        bar.set_label(scale.label, fontsize=fontsize)
        bar.ax.tick_params(labelsize=fontsize - 1)


def write_thickness_maps_png(result: AnalysisView, side: str, path: Path, *, dpi: int = 110) -> Path:
    """The two maps side by side with their colour bar and note, as a PNG for the page."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 4.6), dpi=dpi)
    draw_thickness_maps(
        fig, result, side, axes=((0.07, 0.3, 0.4, 0.6), (0.57, 0.3, 0.4, 0.6)), colorbar=(0.3, 0.12, 0.4, 0.035)
    )
    fig.text(0.07, 0.02, map_note(side), fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", pad_inches=0.1)
    return path
