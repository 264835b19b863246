"""The case report: a two-page A4 PDF (matplotlib's PDF backend; no LaTeX, no browser) and a PNG preview.

Page 1: case and input summary, three slices with the segmentation, the regional table (thickness, volume, T2),
BScore, QC warnings, model and weights revision. Page 2: the flattened femoral and tibial thickness maps and a
3-D view of the bones coloured by thickness. The research-use statement is on both pages.

Text comes from :mod:`report_content` (results.json's numbers, identifiers removed). Fonts are embedded as
TrueType (``pdf.fonttype`` 42) so the text can be searched and extracted. Figures are built as standalone
``Figure`` objects, never through pyplot's global state, so the app's worker threads can write reports safely.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import labels as L
from . import report_content as C
from .slices import overlay_rgb, pixel_mm, take_slice, to_lps_array, window
from .thickness_maps import FlatMap, femoral_map, tibial_map

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .results import KneeAnalysis

A4_INCHES = (8.27, 11.69)
PREVIEW_DPI = 80
SNAPSHOT_MAX_FACES = 12_000  # per bone: enough for a 6 cm picture, and fast to depth-sort
SNAPSHOT_ELEVATION_DEG = 10.0
#: Unit vector from the knee toward the snapshot's camera (anterior, slightly superior), in LPS.
TOWARD_VIEWER_LPS = np.array(
    [0.0, -np.cos(np.radians(SNAPSHOT_ELEVATION_DEG)), np.sin(np.radians(SNAPSHOT_ELEVATION_DEG))]
)


def report_file_names(case_id: str) -> tuple[str, str]:
    return f"{case_id}_report.pdf", f"{case_id}_report.png"


def write_case_report(result: KneeAnalysis, results: dict, pdf_path: Path, png_path: Path | None = None) -> Path:
    """Write the PDF (and the PNG preview of its first page) of ``result``.

    Args:
        result: the analysis (images, surfaces and provenance for the pictures and the model line).
        results: ``result.to_dict()`` as written to results.json: the only source of printed numbers.
    """
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    redact = C.Redactor.from_headers(_source_headers(result))
    with matplotlib.rc_context({"pdf.fonttype": 42, "font.size": 8}):
        pages = [_summary_page(result, results, redact), _maps_page(result, results, redact)]
        metadata = {"Title": "KneeScope case report", "Creator": f"KneeScope {C.software(result.provenance)}"}
        with PdfPages(pdf_path, metadata=metadata) as pdf:
            for page in pages:
                pdf.savefig(page)
        if png_path is not None:
            pages[0].savefig(png_path, dpi=PREVIEW_DPI)
    return pdf_path


def _source_headers(result: KneeAnalysis) -> list:
    source = None if result.image is None else result.image.source
    return [] if source is None else list(source.echoes[0].headers[:1])


def _page(title: str, results: dict, redact: C.Redactor, number: int) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=A4_INCHES)
    fig.text(0.06, 0.965, title, fontsize=15, weight="bold")
    fig.text(0.06, 0.948, redact(f"Case {results['case_id']}"), fontsize=9)
    badge = C.segmentation_verdict(results)
    if badge is not None:
        fig.text(0.94, 0.965, badge[0], fontsize=9, weight="bold", color=badge[1], ha="right")
    footer = f"{C.RESEARCH_STATEMENT}  KneeScope · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · page {number} of 2"
    fig.text(0.06, 0.02, textwrap.fill(footer, 130), fontsize=6.5, color="0.3")
    return fig


def _summary_page(result: KneeAnalysis, results: dict, redact: C.Redactor) -> Figure:
    fig = _page("KneeScope case report", results, redact, 1)
    y = _text_block(fig, 0.06, 0.93, [C.RESEARCH_STATEMENT], redact, width=115, colour="firebrick")
    lines = [*C.input_lines(results, result.provenance), *C.summary_lines(results)]
    _text_block(fig, 0.06, y - 0.008, lines, redact, width=120)
    _slices(fig, result)
    _table(fig, results, top=0.50)
    warnings = [*C.segmentation_qc_lines(results), "QC warnings:", *C.warning_lines(results)]
    _text_block(fig, 0.06, 0.235, warnings, redact, width=125, size=7)
    return fig


def _text_block(
    fig, x: float, y: float, lines: list[str], redact: C.Redactor, *, width: int, size: float = 8, colour="black"
) -> float:
    """Wrapped lines from the top down; returns the y below the block."""
    step = size / 72 / A4_INCHES[1] * 1.45
    for line in lines:
        for part in textwrap.wrap(redact(line), width) or [""]:
            fig.text(x, y, part, fontsize=size, va="top", color=colour)
            y -= step
    return y


def _slices(fig, result: KneeAnalysis) -> None:
    """Axial (patellofemoral), coronal and sagittal (medial compartment) slices with the label overlay."""
    labels, spacing = to_lps_array(result.labels)
    image = None if result.image is None else window(to_lps_array(result.image)[0])
    centres = _slice_centres(labels)
    for n, plane in enumerate(("axial", "coronal", "sagittal")):
        ax = fig.add_axes((0.06 + n * 0.3, 0.56, 0.27, 0.22))
        index = centres[plane]
        base = None if image is None else take_slice(image, plane, index)
        ax.imshow(overlay_rgb(base, take_slice(labels, plane, index), 0.45), interpolation="nearest")
        row_mm, col_mm = pixel_mm(spacing, plane)
        ax.set_aspect(row_mm / col_mm)
        ax.set_title(f"{plane} slice {index + 1}", fontsize=7)
        ax.set_axis_off()


def _slice_centres(labels: np.ndarray) -> dict[str, int]:
    """Slice indices in the [S, P, L] array: patellar cartilage (axial), tibial cartilage (coronal), medial
    tibial cartilage (sagittal), each falling back to all cartilage, then the middle."""

    def centre(names: tuple[str, ...]) -> np.ndarray | None:
        mask = np.isin(labels, [L.CANONICAL[n] for n in names])
        return np.argwhere(mask).mean(axis=0) if mask.any() else None

    fallback = centre(L.CARTILAGES)
    middle = (np.array(labels.shape) - 1) / 2
    out = {}
    for plane, axis, names in (
        ("axial", 0, (L.PATELLAR_CARTILAGE,)),
        ("coronal", 1, (L.MEDIAL_TIBIAL_CARTILAGE, L.LATERAL_TIBIAL_CARTILAGE)),
        ("sagittal", 2, (L.MEDIAL_TIBIAL_CARTILAGE,)),
    ):
        found = next(c for c in (centre(names), fallback, middle) if c is not None)
        out[plane] = int(np.round(found[axis]))
    return out


def _table(fig, results: dict, *, top: float) -> None:
    header, rows = C.table_header(results), C.table_rows(results)
    fig.text(0.06, top + 0.012, "Cartilage regions (thickness along bone normals, area-weighted)", weight="bold")
    ax = fig.add_axes((0.06, top - 0.012 - 0.021 * (len(rows) + 1), 0.88, 0.021 * (len(rows) + 1)))
    ax.set_axis_off()
    widths = [0.28] + [0.72 / (len(header) - 1)] * (len(header) - 1)
    table = ax.table(cellText=rows, colLabels=header, colWidths=widths, loc="upper left", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    unreliable = C.numbers_unreliable(results)  # a failed segmentation: its numbers greyed, the header says why
    for (row, col), cell in table.get_celld().items():
        cell.set_linewidth(0.3)
        if unreliable and row > 0:
            cell.get_text().set_color("0.6")
        if col == 0:
            cell.set_text_props(ha="left")
        if row == 0:
            cell.set_facecolor("0.9")


def _maps_page(result: KneeAnalysis, results: dict, redact: C.Redactor) -> Figure:
    fig = _page("Cartilage thickness maps", results, redact, 2)
    vmax = result.config.thickness_colour_max_mm
    side = results["laterality"]["side"]
    sign = -1.0 if side == "left" else 1.0
    maps = [
        ("Femur, unrolled about the medial-lateral axis", _map_or_none(result, "femur", sign)),
        ("Tibia, seen from above", _map_or_none(result, "tibia", sign)),
    ]
    image = None
    for n, (title, flat) in enumerate(maps):
        ax = fig.add_axes((0.08 + n * 0.47, 0.58, 0.38, 0.32))
        ax.set_title(title, fontsize=8)
        if flat is None:
            ax.text(0.5, 0.5, "no cartilage measured", ha="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        image = ax.imshow(flat.values, extent=flat.extent, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_xlabel(flat.x_label, fontsize=7)
        ax.set_ylabel(flat.y_label, fontsize=7)
        ax.tick_params(labelsize=6)
    if image is not None:
        bar = fig.colorbar(image, cax=fig.add_axes((0.3, 0.535, 0.4, 0.012)), orientation="horizontal")
        bar.set_label("Cartilage thickness (mm)", fontsize=7)
    note = "Medial on the left of both maps; white = no cartilage measured. " + (
        f"Knee side: {side}." if side != "unknown" else "Knee side unknown: medial/lateral not decided."
    )
    fig.text(0.08, 0.49, note, fontsize=7)
    _snapshot(fig, result, vmax)
    return fig


def _map_or_none(result: KneeAnalysis, bone: str, medial_sign: float) -> FlatMap | None:
    surface = result.surfaces.get(bone)
    if surface is None:
        return None
    make = femoral_map if bone == L.FEMUR else tibial_map
    return make(surface, medial_sign=medial_sign)


def _snapshot(fig, result: KneeAnalysis, vmax: float) -> None:
    """3-D view of femur, tibia and patella from the front, coloured by thickness (rasterised)."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    from .meshes import scalar_colours

    ax = fig.add_axes((0.15, 0.06, 0.7, 0.4), projection="3d")
    triangles, colours = [], []
    for bone in L.BONES:
        surface = result.surfaces.get(bone)
        if surface is None:
            continue
        thickness = surface.point_data.get("thickness_mm", np.zeros(surface.n_points))
        measured = surface.point_data.get("region", np.zeros(surface.n_points)) > 0
        points, faces, rgba = _coarse(surface, scalar_colours(thickness, measured, vmax).astype(float) / 255)
        corners = points[faces]
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # outward (LPS)
        facing = normals @ TOWARD_VIEWER_LPS > 0  # back faces culled: mplot3d's depth sort alone lets them through
        triangles.append(corners[facing] * np.array([-1.0, -1.0, 1.0]))  # LPS -> RAS: a rotation, not a mirror
        colours.append(rgba[faces[facing]].mean(axis=1))
    if triangles:
        # One collection: mplot3d depth-sorts polygons within a collection, not across collections.
        collection = Poly3DCollection(np.concatenate(triangles), facecolors=np.concatenate(colours), linewidths=0)
        collection.set_rasterized(True)
        ax.add_collection3d(collection)
        corners = np.concatenate(triangles).reshape(-1, 3)
        lo, hi = corners.min(0), corners.max(0)
        ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), zlim=(lo[2], hi[2]))
        ax.set_box_aspect(hi - lo)
    ax.view_init(elev=SNAPSHOT_ELEVATION_DEG, azim=90)  # camera anterior: patient right on the viewer's left
    ax.set_axis_off()
    ax.set_title("Bones coloured by cartilage thickness (seen from the front)", fontsize=8)


def _coarse(surface, rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The surface decimated to about SNAPSHOT_MAX_FACES faces (fast to depth-sort), each new vertex taking the
    colour of the nearest original one."""
    import fast_simplification
    from scipy.spatial import cKDTree

    if len(surface.faces) <= SNAPSHOT_MAX_FACES:
        return surface.points, surface.faces, rgba
    reduction = 1.0 - SNAPSHOT_MAX_FACES / len(surface.faces)
    points, faces = fast_simplification.simplify(
        surface.points.astype(np.float32), surface.faces, target_reduction=reduction
    )
    _, nearest = cKDTree(surface.points).query(points)
    return points.astype(np.float64), faces.astype(np.int64), rgba[nearest]
