"""What the page shows of a finished (or running) job: numbers, 3-D scene and its colour bar, thickness maps, slices,
viewer links.

Callbacks for the cheap events (sliders, window, overlay, layer toggles, view presets, viewer button) live here too;
they read the job's result (or the upload's preview) kept in memory and never run the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from pipeline import labels as L
from pipeline.report.colour_scales import t2_scale, thickness_scale
from pipeline.report.map_figure import write_thickness_maps_png
from pipeline.report.meshes import NSM_SUFFIX, knee_glb_layers, write_glb
from pipeline.report.orientation_marks import TEXT_RGB, orientation_marks

from . import result_tables, slice_images, slice_view
from .jobs import Job, JobStore

LAYER_CARTILAGE, LAYER_MENISCI, LAYER_SHAPE = "Cartilage", "Menisci", "Shape model"
#: The PDF case report, its PNG preview and the DICOM objects (SEG, SR, T2 map: DICOM inputs only), offered first.
CLINICAL_SUFFIXES = ("_report.pdf", "_report.png", "_seg.dcm", "_sr.dcm", "_t2map.dcm")
COLOUR_THICKNESS, COLOUR_T2 = "Thickness", "T2"
OVERLAY_LABELS, OVERLAY_T2 = "Labels", "T2"
TITLES = {
    COLOUR_THICKNESS: "Bones coloured by cartilage thickness (mm)",
    COLOUR_T2: "Bones coloured by mean cartilage T2 along the bone normal (ms)",
}


@dataclass(frozen=True)
class ViewPreset:
    """A 3-D view: the bones shown and the camera (Model3D's alpha, beta in degrees; radius left to the viewer)."""

    bones: tuple[str, ...]
    camera: tuple[float, float, None]
    hint: str


VIEW_PRESETS = {
    "Front": ViewPreset(L.BONES, (90.0, 80.0, None), "Seen from the front: the patient's right is on your left."),
    "Femur from below": ViewPreset(
        (L.FEMUR,), (90.0, 178.0, None), "The femur's cartilage seen from below (tibia and patella hidden)."
    ),
    "Tibia from above": ViewPreset(
        (L.TIBIA,), (90.0, 2.0, None), "The tibial plateau seen from above, anterior toward the bottom."
    ),
}
DEFAULT_VIEW = "Front"


def result_outputs(job: Job, result, results: dict, files: dict) -> dict:
    """The run event's outputs for a finished analysis (see handlers.OUTPUT_NAMES)."""
    download_names = ("zip", "results.json", "results.csv", "knee.glb", "labels.nii.gz", "t2map.nii.gz")
    clinical = [path for name, path in files.items() if name.endswith(CLINICAL_SUFFIXES)]  # <case>_report.pdf, ...
    maps = write_thickness_maps_png(result, result.laterality.side, job.folder / "thickness_maps.png")
    return {
        "colorbar": colour_bar(result, COLOUR_THICKNESS),
        "numbers": result_tables.numbers_html(results),
        "maps": str(maps),
        "warnings": result_tables.warnings_html(results),
        "downloads": [str(p) for p in clinical] + [str(files[n]) for n in download_names if n in files],
        "legend": slice_images.legend_html({n for n, s in result.structures.items() if s.present}),
        "overlay": gr.Radio(
            interactive=bool(result.t2.computed),
            info=None if result.t2.computed else "T2 overlay: no T2 map for this knee.",
        ),
    }


def _glb(job: Job, result, layers: tuple[str, ...], colour_by: str, view: str) -> Path:
    preset = VIEW_PRESETS.get(view, VIEW_PRESETS[DEFAULT_VIEW])
    include = set(preset.bones)
    if LAYER_CARTILAGE in layers:
        include |= set(L.CARTILAGES)
    if LAYER_MENISCI in layers:
        include |= set(L.MENISCI)
    if LAYER_SHAPE in layers:
        include |= {name for name in result.surfaces if name.endswith(NSM_SUFFIX)}
    mode = "t2" if colour_by == COLOUR_T2 and result.t2.computed else "thickness"
    parts = ["knee", mode, view.lower().replace(" ", "-"), *sorted(layer.lower().replace(" ", "-") for layer in layers)]
    path = job.folder / ("_".join(parts) + ".glb")
    if not path.exists():
        layers_rgba = knee_glb_layers(
            result.surfaces, vmax_mm=result.config.thickness_colour_max_mm, include=tuple(include), colour_by=mode
        )
        marks = orientation_marks(result.surfaces, result.laterality.side)
        layers_rgba += [(mark, _text_rgba(mark.n_points)) for mark in marks]
        write_glb(layers_rgba, path)
    return path


def _text_rgba(n: int) -> np.ndarray:
    rgba = np.empty((n, 4), dtype=np.uint8)
    rgba[:, :3] = TEXT_RGB
    rgba[:, 3] = 255
    return rgba


def colour_bar(result, colour_by: str) -> str:
    """The 3-D view's colour bar (HTML, title with unit), matching the colouring shown."""
    if colour_by == COLOUR_T2 and result.t2.computed:
        scale = t2_scale("Mean cartilage T2 along the bone normal")
        note = "Bone colour: no cartilage measured. Fixed range; values outside drawn at the ends."
    else:
        scale = thickness_scale(result.config.thickness_colour_max_mm)
        note = "Bone colour: no cartilage measured."
        if colour_by == COLOUR_T2:
            note += " T2 colouring needs a qDESS or MESE series: thickness shown."
    return slice_images.colour_bar_html(scale, element_id="colorbar-3d", note=note)


def model3d_update(job: Job, layers, colour_by: str, view: str):
    """The Model3D value, title and camera for these choices."""
    result = job.result
    preset = VIEW_PRESETS.get(view, VIEW_PRESETS[DEFAULT_VIEW])
    colouring = COLOUR_T2 if colour_by == COLOUR_T2 and result.t2.computed else COLOUR_THICKNESS  # type: ignore[union-attr]
    return gr.Model3D(
        value=str(_glb(job, result, tuple(layers), colour_by, view)),
        label=TITLES[colouring],
        camera_position=preset.camera,
    )


def show_3d(
    store: JobStore, token: str | None, layers: list[str], colour_by: str = COLOUR_THICKNESS, view=DEFAULT_VIEW
):
    """The GLB for Model3D, as a separate (non-generator) event: Gradio 6.31's Model3D draws nothing when its value
    comes from a generator."""
    job = store.get(token)
    if job is None or job.result is None:
        return gr.skip()
    return model3d_update(job, layers, colour_by, view)


def update_layers(
    store: JobStore, token: str | None, layers: list[str], colour_by: str = COLOUR_THICKNESS, view=DEFAULT_VIEW
):
    """New GLB, title, camera and colour bar when the layers, the colouring or the view change."""
    job = store.get(token)
    if job is None or job.result is None:
        return gr.skip(), gr.skip(), gr.skip()
    hint = VIEW_PRESETS.get(view, VIEW_PRESETS[DEFAULT_VIEW]).hint
    return model3d_update(job, layers, colour_by, view), colour_bar(job.result, colour_by), view_hint(job.result, hint)


def view_hint(result, hint: str) -> str:
    side = result.laterality.side
    if side in ("left", "right"):
        medial = "right" if side == "right" else "left"
        hint += f" {side.capitalize()} knee: its medial side is on your {medial} in this view."
    return hint + " The words MEDIAL, LATERAL and ANTERIOR in the scene mark the directions."


def update_slice(stack, plane: str, number: float, opacity: float, overlay: str, level: float, width: float) -> str:
    """One view at slice ``number`` (counted from 1, as the slider and the caption count)."""
    if stack is None:
        return gr.skip()
    return slice_view.view_html(
        stack, plane, int(number) - 1, opacity=opacity, overlay=overlay.lower(), level_width=(level, width)
    )


def update_all_slices(stack, ia: float, ic: float, is_: float, opacity: float, overlay: str, level, width):
    return tuple(
        update_slice(stack, plane, index, opacity, overlay, level, width)
        for plane, index in zip(slice_images.PLANES, (ia, ic, is_), strict=True)
    )


def legend_for(stack, overlay: str, present: set[str] | None = None) -> str:
    """The legend under the slices: the T2 scale with the T2 overlay, else the structures' colours."""
    if overlay == OVERLAY_T2 and stack is not None and stack.t2 is not None:
        return slice_images.t2_legend_html()
    return slice_images.legend_html(present)


def open_viewer(store: JobStore, viewers, token: str | None) -> str:
    """Start (or reuse) this job's interactive viewer and return a link to the app's route to it."""
    job = store.get(token)
    if job is None or not (job.folder / "results" / "meshes").is_dir():
        return "Run an analysis first."
    if viewers is None:
        return "Interactive viewers are disabled on this server."
    try:
        viewer = viewers.open(job.folder / "results")
    except RuntimeError as exc:
        return f"Could not start the viewer: {exc}"
    # Relative to the page, so it works under any root path: <root>/viewer/<token>/, behind the app's login.
    url = f"viewer/{viewer.token}/"
    link = f'<a href="{url}" target="_blank" id="viewer-link">Open the interactive 3-D viewer</a>'
    return link + " (it closes itself 5 minutes after you leave it)"
