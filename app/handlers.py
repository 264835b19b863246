"""Callbacks behind the page: UI values -> pipeline calls -> output values. No layout here (see ui.py).

Every failure the pipeline explains (KneePipelineError) reaches the user as its own message; anything else is
logged with its traceback and shown as a short generic message, never as a stack trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from pipeline import labels as L
from pipeline.errors import KneePipelineError
from pipeline.export import NSM_SUFFIX, knee_glb_layers, write_colorbar_png, write_glb

from . import views
from .jobs import Job, JobCancelled, JobStore

logger = logging.getLogger(__name__)

#: Order of the outputs of the run events (ui.py builds its output list from these names).
OUTPUT_NAMES = (
    "status",
    "job_token",
    "axial",
    "coronal",
    "sagittal",
    "axial_slider",
    "coronal_slider",
    "sagittal_slider",
    "colorbar",
    "thickness_table",
    "structure_table",
    "t2_table",
    "warnings",
    "downloads",
    "legend",
    "shape_summary",
)
LAYER_CARTILAGE, LAYER_MENISCI, LAYER_SHAPE = "Cartilage", "Menisci", "Shape model"
BSCORE_EXPLANATION = (
    "BScore: how far the femur's shape lies along the osteoarthritis direction of the ShapeMedKnee shape model, in "
    "healthy-knee standard deviations: 0 ≈ an average healthy knee, below 0 healthier, 2 or more unlike a healthy knee."
)


@dataclass
class Services:
    """What the handlers need, built once at startup and shared read-only by every session."""

    store: JobStore
    segmenter: object | None = None  # pipeline engine with .segment(...) and .model_choices(); None = analysis only
    max_upload_mb: int = 1024
    shape_options: object | None = None  # pipeline.shape_stage.ShapeOptions with the model loaded, or None
    shape_reason: str | None = None  # why the shape model is unavailable
    viewers: object | None = None  # app.viewers.ViewerPool for the interactive trame views


def outputs(**values) -> tuple:
    """A full output tuple: given names get their values, the others are left unchanged."""
    unknown = set(values) - set(OUTPUT_NAMES)
    if unknown:
        raise KeyError(f"unknown outputs {unknown}")
    return tuple(values.get(name, gr.skip()) for name in OUTPUT_NAMES)


def _slices(stack: views.SliceStack, opacity: float, overlay: str, *, reset: bool) -> dict:
    values = {}
    for plane in views.PLANES:
        n = stack.n_slices(plane)
        middle = n // 2
        values[plane] = views.render_slice(stack, plane, middle, opacity=opacity, overlay=overlay)
        values[f"{plane}_slider"] = (
            gr.Slider(minimum=0, maximum=max(n - 1, 1), value=middle, step=1) if reset else gr.skip()
        )
    return values


def _reporter(job: Job, progress: gr.Progress, start: float, end: float) -> Callable[[float, str], None]:
    def report(fraction: float, message: str) -> None:
        job.check_cancelled()  # raising here stops the pipeline at its next progress report
        progress(start + fraction * (end - start), desc=message)

    return report


def _delete_uploads(*paths: str | None) -> None:
    """Uploaded images are deleted once processed (they may hold patient data)."""
    for path in paths:
        if path:
            with contextlib.suppress(OSError):
                os.remove(path)


def _check_size(path: str | None, limit_mb: int) -> None:
    if path and os.path.getsize(path) > limit_mb * 1024 * 1024:
        raise KneePipelineError(f"{Path(path).name} is larger than the {limit_mb} MB upload limit.")


def run_analysis(
    services: Services,
    image_path: str | None,
    labels_path: str | None,
    scheme: str,
    model: str,
    mirroring: bool,
    t2_choice: str,
    opacity: float,
    session: str | None,
    progress: gr.Progress,
    *,
    uploaded: bool = True,
    shape: bool = False,
) -> Iterator[tuple]:
    """The main job: load, segment (or take the given labels), analyse, write; yields results as they appear."""
    from pipeline.analysis import analyze_labels
    from pipeline.io import load_image, load_label_map

    if not image_path and not labels_path:
        raise gr.Error("Upload a knee MRI (or a label map), or click 'Run the example'.")
    job = services.store.create(session)
    try:
        for path in (image_path, labels_path) if uploaded else ():
            _check_size(path, services.max_upload_mb)
        progress(0.02, desc="Loading")
        image = load_image(image_path) if image_path else None
        job.check_cancelled()
        if image is not None:
            stack = views.build_stack(image, None)
            services.store.remember(job, stack=stack)
            yield outputs(
                status="Image loaded; segmenting…" if not labels_path else "Image loaded; reading labels…",
                job_token=job.token,
                **_slices(stack, opacity, "labels", reset=True),
            )
        extra = {}
        if labels_path:
            labels = load_label_map(labels_path, scheme).volume
            source = f"given label map ({scheme} scheme)"
        else:
            labels, extra = _segment(services, image, model, mirroring, _reporter(job, progress, 0.05, 0.6))
            source = f"segmented with {extra.get('segmentation', {}).get('model', model)}"
        stack = views.build_stack(image, labels)
        services.store.remember(job, stack=stack)
        yield outputs(
            status=f"Labels ready ({source}); measuring…",
            job_token=job.token,
            legend=views.legend_html(),
            **_slices(stack, opacity, "labels", reset=image is None),
        )
        t2 = {"Automatic": None, "On": True, "Off": False}.get(t2_choice)
        result = analyze_labels(
            labels,
            scheme="canonical",
            image=image_path if image is not None else None,
            t2=t2,
            shape_model=_shape_options(services) if shape else None,
            progress=_reporter(job, progress, 0.6, 0.9),
            extra_provenance=extra,
            case_id=_case_id(image_path or labels_path),
        )
        if image is not None:
            result = _with_image(result, image)
        progress(0.92, desc="Writing results")
        files = result.write(job.folder / "results")
        stack = views.build_stack(image, labels, result.t2_map)
        services.store.remember(job, result=result, stack=stack)
        yield outputs(
            status=_done_message(result),
            job_token=job.token,
            **_result_outputs(job, result, files),
            **_slices(stack, opacity, "labels", reset=False),
        )
    except JobCancelled:
        raise gr.Error("Cancelled: the job was stopped at your request.") from None
    except KneePipelineError as exc:
        raise gr.Error(str(exc)) from None
    except gr.Error:
        raise
    except Exception as exc:  # unknown failure: full details to the log, a short message to the page
        logger.error("job %s failed:\n%s", job.token, traceback.format_exc())
        raise gr.Error(
            f"Unexpected {type(exc).__name__}; the details are in the server log (job {job.token[:8]})."
        ) from None
    finally:
        services.store.finish(session, job)
        _delete_uploads(image_path, labels_path)


def _shape_options(services: Services):
    from pipeline.shape_stage import ShapeOptions

    # Without loaded weights the stage records why in results.json (never a silent skip).
    return services.shape_options or ShapeOptions()


def shape_summary(result) -> str:
    section = result.shape_model
    if not section.get("computed"):
        return "" if section.get("reason") == "Shape model not requested." else f"Shape model: {section.get('reason')}"
    bscore = section.get("bscore")
    score = "BScore unavailable (no BScore vectors)" if bscore is None else f"**BScore {bscore:.2f}**"
    return (
        f"{score} — NSM {section['model_id']}, surface distance to the fit {section['assd_bone_mm']:.2f} mm "
        f"(bone). {BSCORE_EXPLANATION}"
    )


def _with_image(result, image):
    from dataclasses import replace

    return result if result.image is not None else replace(result, image=image)


def _case_id(path: str | None) -> str | None:
    from pipeline.io import file_stem

    return file_stem(Path(path)) if path else None


def _segment(services: Services, image, model: str, mirroring: bool, report) -> tuple:
    if services.segmenter is None:
        raise KneePipelineError(
            "No segmentation model is available on this server. Upload an existing label map with the image to "
            "analyse it, or ask the administrator to install the model weights."
        )
    segmentation = services.segmenter.segment(image, model=model, mirroring=mirroring, progress=report)
    return segmentation.labels, {"segmentation": segmentation.provenance}


def _done_message(result) -> str:
    side = result.laterality.side
    n = len(result.warnings)
    return f"**Done**: {side} knee, {n} QC warning{'s' if n != 1 else ''}. Files are kept for 24 hours."


def _result_outputs(job: Job, result, files: dict) -> dict:
    colorbar = _colorbar(job, result, COLOUR_THICKNESS)
    download_names = ("zip", "results.json", "results.csv", "knee.glb", "labels.nii.gz", "t2map.nii.gz")
    warnings = "\n".join(f"- {w}" for w in result.warnings) or "No QC warnings."
    return {
        "colorbar": str(colorbar),
        "thickness_table": views.thickness_table(result),
        "structure_table": views.structure_table(result),
        "t2_table": views.t2_table(result),
        "warnings": warnings,
        "downloads": [str(files[n]) for n in download_names if n in files],
        "legend": views.legend_html({n for n, s in result.structures.items() if s.present}),
        "shape_summary": shape_summary(result),
    }


COLOUR_THICKNESS, COLOUR_T2 = "Thickness", "T2"


def _glb(job: Job, result, layers: tuple[str, ...], colour_by: str = COLOUR_THICKNESS) -> Path:
    include = set(L.BONES)
    if LAYER_CARTILAGE in layers:
        include |= set(L.CARTILAGES)
    if LAYER_MENISCI in layers:
        include |= set(L.MENISCI)
    if LAYER_SHAPE in layers:
        include |= {name for name in result.surfaces if name.endswith(NSM_SUFFIX)}
    mode = "t2" if colour_by == COLOUR_T2 and result.t2.get("computed") else "thickness"
    name = "_".join(["knee", mode, *sorted(layer.lower().replace(" ", "-") for layer in layers)]) + ".glb"
    path = job.folder / name
    if not path.exists():
        layers_rgba = knee_glb_layers(
            result.surfaces, vmax_mm=result.config.thickness_colour_max_mm, include=tuple(include), colour_by=mode
        )
        write_glb(layers_rgba, path)
    return path


def _colorbar(job: Job, result, colour_by: str) -> Path:
    if colour_by == COLOUR_T2 and result.t2.get("computed"):
        return write_colorbar_png(
            job.folder / "colorbar_t2.png",
            vmax_mm=80.0,
            cmap="magma",
            label="Mean cartilage T2 along the bone normal (ms)",
        )
    return write_colorbar_png(job.folder / "colorbar.png", vmax_mm=result.config.thickness_colour_max_mm)


def show_3d(services: Services, token: str | None, layers: list[str], colour_by: str = COLOUR_THICKNESS):
    """The GLB for Model3D, as a separate (non-generator) event: Gradio 6.31's Model3D draws nothing when its value
    comes from a generator."""
    job = services.store.get(token)
    if job is None or job.result is None:
        return None
    return str(_glb(job, job.result, tuple(layers), colour_by))


def update_layers(services: Services, token: str | None, layers: list[str], colour_by: str = COLOUR_THICKNESS):
    """New GLB and colour bar when the layer toggles or the colouring change."""
    job = services.store.get(token)
    if job is None or job.result is None:
        return gr.skip(), gr.skip()
    return str(_glb(job, job.result, tuple(layers), colour_by)), str(_colorbar(job, job.result, colour_by))


def update_slice(services: Services, token: str | None, plane: str, index: float, opacity: float, overlay: str):
    job = services.store.get(token)
    if job is None or job.stack is None:
        return gr.skip()
    return views.render_slice(job.stack, plane, int(index), opacity=opacity, overlay=overlay.lower())


def update_all_slices(
    services: Services, token: str | None, ia: float, ic: float, is_: float, opacity: float, overlay: str
):
    return tuple(
        update_slice(services, token, plane, index, opacity, overlay)
        for plane, index in zip(views.PLANES, (ia, ic, is_), strict=True)
    )


def open_viewer(services: Services, token: str | None, headers: dict) -> str:
    """Start (or reuse) this job's interactive viewer and return a link to it."""
    job = services.store.get(token)
    if job is None or not (job.folder / "results" / "meshes").is_dir():
        return "Run an analysis first."
    if services.viewers is None:
        return "Interactive viewers are disabled on this server."
    try:
        port = services.viewers.open(job.folder / "results")
    except RuntimeError as exc:
        return f"Could not start the viewer: {exc}"
    if headers.get("x-forwarded-host"):  # behind Caddy: routed by path, no extra port to open
        url = f"/viewer/{port}/"
    else:
        url = f"http://{headers.get('host', 'localhost').rsplit(':', 1)[0]}:{port}/"
    link = f'<a href="{url}" target="_blank" id="viewer-link">Open the interactive 3-D viewer</a>'
    return link + " (it closes itself 5 minutes after you leave it)"


def t2_choice_for_upload(path: str | None):
    """T2 on for DICOM uploads (computed if the series is two-echo qDESS); off, with the reason, for other files."""
    from pipeline.t2_stage import t2_availability

    if not path:
        return gr.Radio(value="Automatic", interactive=True, info="Automatic: computed for a two-echo qDESS series")
    possible, reason = t2_availability(path)
    if possible:
        return gr.Radio(value="On", interactive=True, info=reason)
    return gr.Radio(value="Off", interactive=False, info=reason)


def cancel(services: Services, session: str | None) -> str:
    return "Cancelling…" if services.store.cancel(session) else "Nothing of yours is running."


def example_inputs(services: Services) -> tuple[str, str | None]:
    """Fresh copies of the synthetic example knee (an MR-like image; its labels too when no segmenter is loaded).

    Copies, because a job deletes its inputs when done.
    """
    import shutil
    import tempfile

    from pipeline.io import write_volume
    from pipeline.synthetic import make_phantom, render_mr

    master = services.store.root.parent / "example"
    image, labels = master / "synthetic_knee.nrrd", master / "synthetic_knee_labels.nrrd"
    if not image.exists():
        phantom = make_phantom(side="right")
        write_volume(phantom.labels, labels)
        write_volume(render_mr(phantom.labels), image)
    copies = Path(tempfile.mkdtemp(prefix="example-", dir=services.store.root.parent))
    image_copy = Path(shutil.copy(image, copies / image.name))
    if services.segmenter is not None:
        return str(image_copy), None
    return str(image_copy), str(shutil.copy(labels, copies / labels.name))
