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
from . import pdf_fonts
from . import report_content as C
from .map_figure import draw_thickness_maps, map_note
from .slices import (
    EDGE_LETTERS,
    lps_layout,
    overlay_rgb,
    pixel_mm,
    slice_locations,
    take_slice,
    to_lps_array,
    window,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .analysis_view import AnalysisView

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


def write_case_report(result: AnalysisView, results: dict, pdf_path: Path, png_path: Path | None = None) -> Path:
    """Write the PDF (and the PNG preview of its first page) of ``result``.

    Args:
        result: the analysis (images, surfaces and provenance for the pictures and the model line).
        results: ``result.to_dict()`` as written to results.json: the only source of printed numbers.
    """
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    from ..log_levels import quiet_noisy_libraries

    quiet_noisy_libraries()  # fontTools logs every subset table at INFO
    pdf_fonts.install()  # fonts embedded without the layout tables a PDF never reads: same pages, faster
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


def _source_headers(result: AnalysisView) -> list:
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


def _summary_page(result: AnalysisView, results: dict, redact: C.Redactor) -> Figure:
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


def _slices(fig, result: AnalysisView) -> None:
    """Axial (patellofemoral), coronal and sagittal (medial compartment) slices with the label overlay, each with its
    orientation letters and a position a viewer can find (mm along the normal; the DICOM image number in the
    acquisition plane), then the colour legend of the structures."""
    labels, spacing = to_lps_array(result.labels)
    image = None if result.image is None else window(to_lps_array(result.image)[0])
    locations = slice_locations(result.image if result.image is not None else result.labels)
    centres = _slice_centres(labels, _lps_boxes(result))
    for n, plane in enumerate(("axial", "coronal", "sagittal")):
        ax = fig.add_axes((0.06 + n * 0.3, 0.575, 0.27, 0.2))
        index = centres[plane]
        base = None if image is None else take_slice(image, plane, index)
        ax.imshow(overlay_rgb(base, take_slice(labels, plane, index), 0.45), interpolation="nearest")
        row_mm, col_mm = pixel_mm(spacing, plane)
        ax.set_aspect(row_mm / col_mm)
        ax.set_title(f"{plane.capitalize()} · {locations.describe(plane, index)}", fontsize=7)
        _edge_letters(ax, plane)
        ax.set_axis_off()
    _label_legend(fig, 0.06, 0.56)


def _edge_letters(ax, plane: str) -> None:
    """R/L/A/P/S/I at the middle of each edge of a slice, on a dark patch so they read on any image."""
    top, bottom, left, right = EDGE_LETTERS[plane]
    style = {"fontsize": 7, "color": "white", "weight": "bold", "transform": ax.transAxes}
    box = {"boxstyle": "round,pad=0.15", "facecolor": "black", "alpha": 0.6, "linewidth": 0}
    for letter, x, y, ha, va in (
        (top, 0.5, 0.98, "center", "top"),
        (bottom, 0.5, 0.02, "center", "bottom"),
        (left, 0.02, 0.5, "left", "center"),
        (right, 0.98, 0.5, "right", "center"),
    ):
        ax.text(x, y, letter, ha=ha, va=va, bbox=box, **style)


def _label_legend(fig, x: float, y: float) -> None:
    """The structures' overlay colours in one row of swatches."""
    from matplotlib.patches import Rectangle

    per_row = 5
    step = 0.88 / per_row
    for n, name in enumerate(L.STRUCTURES):
        colour = [c / 255 for c in L.COLOURS[name]]
        left, y_row = x + (n % per_row) * step, y - (n // per_row) * 0.012
        swatch = Rectangle((left, y_row - 0.004), 0.01, 0.007, transform=fig.transFigure, facecolor=colour)
        swatch.set(edgecolor="0.4", linewidth=0.3)
        fig.patches.append(swatch)
        fig.text(left + 0.014, y_row - 0.0005, L.structure_display_name(name), fontsize=6.5, va="center")


def _lps_boxes(result: AnalysisView) -> dict[str, tuple[slice, ...]] | None:
    """The structures' bounding boxes in the [S, P, L] array, from those the morphometry found (no pass over the
    grid); None when the map is not a permuted view (an oblique grid is resampled) or a box is not known."""
    layout = lps_layout(result.labels)
    present = {name: stats.box for name, stats in result.structures.items() if stats.present}
    if layout is None or any(box is None for box in present.values()):
        return None
    return {name: layout.lps_box(box, result.labels.array.shape) for name, box in present.items() if box is not None}


def _slice_centres(labels: np.ndarray, boxes: dict[str, tuple[slice, ...]] | None = None) -> dict[str, int]:
    """Slice indices in the [S, P, L] array: patellar cartilage (axial), tibial cartilage (coronal), medial
    tibial cartilage (sagittal), each falling back to all cartilage, then the middle. ``boxes``: the structures'
    boxes in that array, when known (else found here in one pass)."""

    if boxes is None:
        from ..morphometry.qc import label_boxes

        boxes = label_boxes(labels)

    def centre(names: tuple[str, ...]) -> np.ndarray | None:
        found = [boxes[name] for name in names if name in boxes]
        if not found:
            return None
        box = tuple(slice(min(b[a].start for b in found), max(b[a].stop for b in found)) for a in range(3))
        lut = np.zeros(256, dtype=bool)
        lut[[L.CANONICAL[n] for n in names]] = True
        mask = lut[labels[box]]
        total = np.count_nonzero(mask)
        # the centroid from each axis's profile (counts per slice) within the structures' bounding box: no list of
        # voxel coordinates is made, and the rest of the grid is not summed
        return np.array(
            [np.dot(np.arange(box[axis].start, box[axis].stop), mask.sum(axis=tuple(a for a in range(3) if a != axis)))
             / total for axis in range(3)]
        )  # fmt: skip

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


def _maps_page(result: AnalysisView, results: dict, redact: C.Redactor) -> Figure:
    fig = _page("Cartilage thickness maps", results, redact, 2)
    side = results["laterality"]["side"]
    draw_thickness_maps(
        fig, result, side, axes=((0.08, 0.58, 0.38, 0.32), (0.55, 0.58, 0.38, 0.32)), colorbar=(0.3, 0.535, 0.4, 0.012)
    )
    fig.text(0.08, 0.49, map_note(side), fontsize=7)
    _snapshot(fig, result, result.config.thickness_colour_max_mm, side)
    return fig


def _snapshot(fig, result: AnalysisView, vmax: float, side: str) -> None:
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
    for letter, x in (("R", 0.27), ("L", 0.73)):  # the patient's right on the viewer's left
        compartment = {"right": {"R": "lateral", "L": "medial"}, "left": {"R": "medial", "L": "lateral"}}
        words = compartment.get(side, {}).get(letter)
        fig.text(x, 0.26, letter + (f"\n({words})" if words else ""), fontsize=8, weight="bold", ha="center")


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
