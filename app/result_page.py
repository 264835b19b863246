"""What the page shows of a finished (or running) job: tables, 3-D scene, colour bars, slices, viewer links.

Callbacks for the cheap events (sliders, layer toggles, viewer button) live here too; they read the job's result
kept in memory by the job store and never run the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from pipeline import labels as L
from pipeline.report.meshes import NSM_SUFFIX, knee_glb_layers, write_colorbar_png, write_glb

from . import result_tables, slice_images
from .jobs import Job, JobStore

LAYER_CARTILAGE, LAYER_MENISCI, LAYER_SHAPE = "Cartilage", "Menisci", "Shape model"
#: The PDF case report, its PNG preview and the DICOM-SEG (DICOM inputs only), offered first.
CLINICAL_SUFFIXES = ("_report.pdf", "_report.png", "_seg.dcm")
COLOUR_THICKNESS, COLOUR_T2 = "Thickness", "T2"
BSCORE_EXPLANATION = (
    "BScore: how far the femur's shape lies along the osteoarthritis direction of the ShapeMedKnee shape model, in "
    "healthy-knee standard deviations: 0 ≈ an average healthy knee, below 0 healthier, 2 or more unlike a healthy knee."
)


def done_message(result, retention_hours: float) -> str:
    side = result.laterality.side
    n = len(result.warnings)
    qc = result.segmentation_qc  # the segmentation's verdict: said only when it is not "ok"
    verdict = f" **{qc.message()}**" if qc is not None and qc.verdict != "ok" else ""
    return (
        f"**Done**: {side} knee, {n} QC warning{'s' if n != 1 else ''}.{verdict} "
        f"Files are kept for {retention_hours:g} hours."
    )


def shape_summary(result) -> str:
    fit = result.shape_fit
    if fit is None:
        reason = result.shape_model.reason
        return "" if reason == "Shape model not requested." else f"Shape model: {reason}"
    score = "BScore unavailable (no BScore vectors)" if fit.bscore is None else f"**BScore {fit.bscore:.2f}**"
    return (
        f"{score} — NSM {fit.model_id}, surface distance to the fit {fit.assd_bone_mm:.2f} mm (bone). "
        f"{BSCORE_EXPLANATION}"
    )


def result_outputs(job: Job, result, files: dict) -> dict:
    colorbar = _colorbar(job, result, COLOUR_THICKNESS)
    download_names = ("zip", "results.json", "results.csv", "knee.glb", "labels.nii.gz", "t2map.nii.gz")
    clinical = [path for name, path in files.items() if name.endswith(CLINICAL_SUFFIXES)]  # <case>_report.pdf, ...
    warnings = "\n".join(f"- {w}" for w in result.warnings) or "No QC warnings."
    return {
        "colorbar": str(colorbar),
        "thickness_table": result_tables.thickness_table(result),
        "structure_table": result_tables.structure_table(result),
        "t2_table": result_tables.t2_table(result),
        "warnings": warnings,
        "downloads": [str(p) for p in clinical] + [str(files[n]) for n in download_names if n in files],
        "legend": slice_images.legend_html({n for n, s in result.structures.items() if s.present}),
        "shape_summary": shape_summary(result),
    }


def _glb(job: Job, result, layers: tuple[str, ...], colour_by: str = COLOUR_THICKNESS) -> Path:
    include = set(L.BONES)
    if LAYER_CARTILAGE in layers:
        include |= set(L.CARTILAGES)
    if LAYER_MENISCI in layers:
        include |= set(L.MENISCI)
    if LAYER_SHAPE in layers:
        include |= {name for name in result.surfaces if name.endswith(NSM_SUFFIX)}
    mode = "t2" if colour_by == COLOUR_T2 and result.t2.computed else "thickness"
    name = "_".join(["knee", mode, *sorted(layer.lower().replace(" ", "-") for layer in layers)]) + ".glb"
    path = job.folder / name
    if not path.exists():
        layers_rgba = knee_glb_layers(
            result.surfaces, vmax_mm=result.config.thickness_colour_max_mm, include=tuple(include), colour_by=mode
        )
        write_glb(layers_rgba, path)
    return path


def _colorbar(job: Job, result, colour_by: str) -> Path:
    if colour_by == COLOUR_T2 and result.t2.computed:
        return write_colorbar_png(
            job.folder / "colorbar_t2.png",
            vmax_mm=80.0,
            cmap="magma",
            label="Mean cartilage T2 along the bone normal (ms)",
        )
    return write_colorbar_png(job.folder / "colorbar.png", vmax_mm=result.config.thickness_colour_max_mm)


def show_3d(store: JobStore, token: str | None, layers: list[str], colour_by: str = COLOUR_THICKNESS):
    """The GLB for Model3D, as a separate (non-generator) event: Gradio 6.31's Model3D draws nothing when its value
    comes from a generator."""
    job = store.get(token)
    if job is None or job.result is None:
        return None
    return str(_glb(job, job.result, tuple(layers), colour_by))


def update_layers(store: JobStore, token: str | None, layers: list[str], colour_by: str = COLOUR_THICKNESS):
    """New GLB and colour bar when the layer toggles or the colouring change."""
    job = store.get(token)
    if job is None or job.result is None:
        return gr.skip(), gr.skip()
    return str(_glb(job, job.result, tuple(layers), colour_by)), str(_colorbar(job, job.result, colour_by))


def update_slice(store: JobStore, token: str | None, plane: str, index: float, opacity: float, overlay: str):
    job = store.get(token)
    if job is None or job.stack is None:
        return gr.skip()
    return slice_images.render_slice(job.stack, plane, int(index), opacity=opacity, overlay=overlay.lower())


def update_all_slices(
    store: JobStore, token: str | None, ia: float, ic: float, is_: float, opacity: float, overlay: str
):
    return tuple(
        update_slice(store, token, plane, index, opacity, overlay)
        for plane, index in zip(slice_images.PLANES, (ia, ic, is_), strict=True)
    )


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
