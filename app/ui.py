"""The page: layout and event wiring only. ``build_demo(services, settings)`` returns the gr.Blocks.

Layout in two builders (the inputs column, the results column), wiring in two more (the jobs, the cheap views).
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import gradio as gr

from . import compare, handlers, result_page, result_tables, slice_images
from .handlers import OUTPUT_NAMES, PageOptions
from .jobs import JOB_LANE
from .result_page import LAYER_CARTILAGE, LAYER_MENISCI, LAYER_SHAPE
from .settings import AppSettings
from .startup import Services

NOTICE = (
    "**Research use only — not for clinical diagnosis.** Upload anonymised images only. Uploads are deleted when "
    "you cancel or leave the page; uploads and results are deleted after {hours:g} hours."
)
FILE_TYPES = [".nii", ".nii.gz", ".gz", ".nrrd", ".mha", ".zip", ".dcm"]
LABEL_TYPES = [".nii", ".nii.gz", ".gz", ".nrrd", ".mha", ".dcm"]  # .dcm: a DICOM-SEG
NO_MODEL = "(none: analysis of label maps only)"


def _model_choices(services: Services) -> tuple[list[str], str, str]:
    """Models to offer, the default, and a note on those that are not available."""
    if not services.engine.can_segment:
        note = "No segmentation model is loaded: upload a label map with your image, or run the example."
        return [NO_MODEL], NO_MODEL, note
    available, notes = [], []
    for name, ok, reason in services.engine.model_choices():
        (available.append(name) if ok else notes.append(f"- {name}: {reason}"))
    note = ("Unavailable models:\n" + "\n".join(notes)) if notes else ""
    return available, available[0], note


def build_demo(services: Services, settings: AppSettings) -> gr.Blocks:
    with gr.Blocks(title="KneeScope", delete_cache=(3600, int(settings.retention_hours * 3600))) as demo:
        gr.Markdown("# KneeScope — knee MRI: segmentation, cartilage thickness, T2")
        gr.Markdown(NOTICE.format(hours=settings.retention_hours), elem_id="notice")
        with gr.Row():
            with gr.Column(scale=1):
                inputs = _inputs_column(services)
            with gr.Column(scale=2):
                results = _results_column()
        results.job_token = gr.State(None)
        _wire_jobs(services, inputs, results)
        _wire_views(services, inputs, results)
        _compare_tab(services)
        _wire_session(services, demo, inputs)
    return demo


def _inputs_column(services: Services) -> SimpleNamespace:
    models, default_model, model_note = _model_choices(services)
    if services.engine.can_segment and all("demo" in m.lower() for m in models):
        gr.Markdown(
            "⚠️ Only the **demo model** is available on this server: it is trained on synthetic knees and "
            "is **not for real MRI**.",
            elem_id="demo-notice",
        )
    c = SimpleNamespace()
    c.image = gr.File(
        label="Knee MRI (NIfTI, NRRD, MHA, zip of one DICOM series, DICOM)",
        file_types=FILE_TYPES,
        type="filepath",
        elem_id="image-input",
    )
    with gr.Accordion("Already segmented? Add the label map", open=False):
        c.labels = gr.File(label="Label map", file_types=LABEL_TYPES, type="filepath", elem_id="labels-input")
        c.scheme = gr.Radio(
            ["auto", "native", "canonical"],
            value="auto",
            label="Label scheme",
            info="auto: told apart by where the bones are; native: the published knee nnU-Net's labels",
        )
    with gr.Accordion("Options", open=False):
        c.model = gr.Dropdown(models, value=default_model, label="Segmentation model")
        if model_note:
            gr.Markdown(model_note)
        c.mirroring = gr.Checkbox(False, label="Test-time mirroring (slower, slightly smoother)")
        c.t2 = gr.Radio(
            ["Automatic", "On", "Off"],
            value="Automatic",
            label="T2 mapping (qDESS or multi-echo spin echo)",
            info="Automatic: computed when the upload is a qDESS or multi-echo spin-echo (MESE) DICOM series",
        )
        c.shape = gr.Checkbox(
            value=services.shape_available and _has_gpu(),
            interactive=services.shape_available,
            label="Neural shape model + BScore (about 10 s on a GPU, many minutes on a CPU)",
            info=services.shape_reason or "Fits the ShapeMedKnee femur model (bone + cartilage).",
        )
    with gr.Row():
        c.run = gr.Button("Run", variant="primary", elem_id="run-btn")
        c.cancel = gr.Button("Cancel", variant="stop", elem_id="cancel-btn")
    with gr.Row():
        c.example = gr.Button("Run the example", elem_id="example-btn", size="sm")
        c.qdess_example = gr.Button("Run the qDESS example", elem_id="qdess-example-btn", size="sm")
    c.status = gr.Markdown("Upload an image to start.", elem_id="status")
    return c


def _results_column() -> SimpleNamespace:
    r = SimpleNamespace()
    # Model3D must stay visible: it draws nothing when its value arrives inside a hidden tab.
    with gr.Row():
        for plane in slice_images.PLANES:
            setattr(
                r,
                plane,
                gr.Image(label=plane.capitalize(), type="numpy", format="png", elem_id=f"slice-{plane}", height=300),
            )
    with gr.Row():
        for plane in slice_images.PLANES:
            setattr(r, f"{plane}_slider", gr.Slider(0, 1000, value=0, step=1, label=f"{plane.capitalize()} slice"))
    with gr.Row():
        r.opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Overlay opacity")
        r.overlay = gr.Radio(["Labels", "T2"], value="Labels", label="Overlay")
    r.legend = gr.HTML(slice_images.legend_html())
    with gr.Row():
        with gr.Column(scale=3):
            r.model3d = gr.Model3D(
                label="Bones coloured by cartilage thickness",
                elem_id="model3d",
                clear_color=(1.0, 1.0, 1.0, 1.0),
                height=460,
            )
        with gr.Column(scale=1):
            r.colorbar = gr.Image(label="Thickness (mm)", type="filepath", height=90, show_label=False)
            r.layers = gr.CheckboxGroup(
                [LAYER_CARTILAGE, LAYER_MENISCI, LAYER_SHAPE], value=[LAYER_MENISCI], label="Show"
            )
            r.colour_by = gr.Radio(
                [result_page.COLOUR_THICKNESS, result_page.COLOUR_T2],
                value=result_page.COLOUR_THICKNESS,
                label="Colour bones by",
                info="T2: mean cartilage T2 along each bone normal (qDESS or MESE series only)",
            )
            r.viewer_button = gr.Button("Interactive 3-D viewer", size="sm", elem_id="viewer-btn")
            r.viewer_link = gr.HTML(elem_id="viewer-link-box")
            r.shape_summary = gr.Markdown(elem_id="shape-summary")
            r.warnings = gr.Markdown(elem_id="qc-warnings")
    with gr.Tab("Metrics"):
        r.thickness_table = gr.Dataframe(
            headers=result_tables.THICKNESS_HEADERS,
            label="Cartilage thickness",
            elem_id="thickness-table",
            interactive=False,
        )
        r.structure_table = gr.Dataframe(headers=result_tables.STRUCTURE_HEADERS, label="Structures", interactive=False)
        r.t2_table = gr.Dataframe(headers=result_tables.T2_HEADERS, label="T2 (qDESS or MESE)", interactive=False)
    with gr.Tab("Downloads"):
        r.downloads = gr.File(
            label="Results: PDF report (+ PNG preview), DICOM-SEG for DICOM inputs, data files",
            file_count="multiple",
            interactive=False,
            elem_id="downloads",
        )
    return r


def _wire_jobs(services: Services, c: SimpleNamespace, r: SimpleNamespace) -> None:
    """The heavy events: one queue lane ("gpu") for every analysis, then the 3-D view as its own event."""
    targets = {"status": c.status, **{name: getattr(r, name) for name in OUTPUT_NAMES if name != "status"}}
    outputs = [targets[name] for name in OUTPUT_NAMES]
    lane = {"concurrency_id": JOB_LANE, "concurrency_limit": 1}

    def options(scheme, model, mirroring, t2, opacity, shape) -> PageOptions:
        return PageOptions(scheme, model, bool(mirroring), t2, float(opacity), bool(shape))

    def run_job(
        image, labels, scheme, model, mirroring, t2, opacity, shape, request: gr.Request, progress=gr.Progress()
    ):
        chosen = options(scheme, model, mirroring, t2, opacity, shape)
        submitted = handlers.submitted_at(request)
        yield from handlers.run_upload(services, image, labels, chosen, _session(request), progress, submitted)

    def example_job(which: str, t2: str):
        def run(model, mirroring, opacity, shape, request: gr.Request, progress=gr.Progress()):
            chosen = options("canonical", model, mirroring, t2, opacity, shape)
            submitted = handlers.submitted_at(request)
            yield from handlers.run_example(services, which, chosen, _session(request), progress, submitted)

        return run

    example_inputs = [c.model, c.mirroring, r.opacity, c.shape]
    events = [
        c.run.click(
            run_job,
            [c.image, c.labels, c.scheme, c.model, c.mirroring, c.t2, r.opacity, c.shape],
            outputs,
            api_name="run",
            **lane,
        ),
        c.example.click(example_job("knee", "Automatic"), example_inputs, outputs, api_name="example", **lane),
        c.qdess_example.click(example_job("qdess", "On"), example_inputs, outputs, api_name="qdess_example", **lane),
    ]
    for event in events:
        event.success(
            partial(result_page.show_3d, services.store),
            [r.job_token, r.layers, r.colour_by],
            r.model3d,
            api_name=False,
            concurrency_limit=None,
            show_progress="hidden",
        )

    def cancel_job(request: gr.Request):
        message = handlers.cancel(services, _session(request))
        return message, None, None  # the uploads are gone from the server: clear them from the page too

    c.cancel.click(
        cancel_job, None, [c.status, c.image, c.labels], api_name="cancel", concurrency_limit=None, cancels=events
    )


def _wire_session(services: Services, demo: gr.Blocks, c: SimpleNamespace) -> None:
    """Uploads belong to the page session that made them: noted on arrival, removed when the session ends."""
    if services.uploads is not None:
        services.uploads.track(demo.upload_file_set)

    def image_arrived(path, request: gr.Request):
        handlers.remember_upload(services, path, _session(request))
        return handlers.t2_choice_for_upload(path)

    def labels_arrived(path, request: gr.Request):
        handlers.remember_upload(services, path, _session(request))

    c.image.change(image_arrived, c.image, c.t2, concurrency_limit=None, api_visibility="private")
    c.labels.change(labels_arrived, c.labels, None, concurrency_limit=None, api_visibility="private")

    def session_ended(request: gr.Request):
        handlers.session_ended(services, _session(request))

    demo.unload(session_ended)


def _wire_views(services: Services, c: SimpleNamespace, r: SimpleNamespace) -> None:
    """Cheap events that only redraw from the job's result in memory: sliders, overlay, layers, viewer."""
    store = services.store

    def viewer(token):
        return result_page.open_viewer(store, services.viewers, token)

    r.viewer_button.click(viewer, r.job_token, r.viewer_link, api_name="viewer", concurrency_limit=None)
    for plane in slice_images.PLANES:
        r_slider = getattr(r, f"{plane}_slider")
        r_slider.input(
            _slice_fn(store, plane),
            [r.job_token, r_slider, r.opacity, r.overlay],
            getattr(r, plane),
            concurrency_limit=None,
            show_progress="hidden",
            api_name=f"slice_{plane}",
        )
    sliders = [getattr(r, f"{plane}_slider") for plane in slice_images.PLANES]
    for control in (r.opacity, r.overlay):
        control.change(
            partial(result_page.update_all_slices, store),
            [r.job_token, *sliders, r.opacity, r.overlay],
            [getattr(r, plane) for plane in slice_images.PLANES],
            concurrency_limit=None,
            show_progress="hidden",
            api_visibility="private",
        )
    for control in (r.layers, r.colour_by):
        control.change(
            partial(result_page.update_layers, store),
            [r.job_token, r.layers, r.colour_by],
            [r.model3d, r.colorbar],
            concurrency_limit=None,
            api_name="layers" if control is r.layers else False,
        )


def _compare_tab(services: Services) -> None:
    """The "Compare two visits" tab: two uploads (results zips, MRIs or label maps) -> change map, table, files."""
    with gr.Tab("Compare two visits"):
        gr.Markdown(
            "Cartilage thickness change between two visits of the **same knee**: follow-up minus baseline, on the "
            "baseline's bone surface and regions. Upload each visit as the results zip of an earlier analysis, an MRI "
            "or a label map."
        )
        with gr.Row():
            baseline = gr.File(label="Baseline", file_types=FILE_TYPES, type="filepath", elem_id="baseline-input")
            followup = gr.File(label="Follow-up", file_types=FILE_TYPES, type="filepath", elem_id="followup-input")
        with gr.Row():
            scheme = gr.Radio(["auto", "native", "canonical"], value="auto", label="Label scheme (label maps)")
            threshold = gr.Number(0.2, minimum=0, step=0.05, label="Thinned / thickened beyond (mm)")
        with gr.Row():
            run = gr.Button("Compare", variant="primary", elem_id="compare-btn")
            cancel = gr.Button("Cancel", variant="stop", elem_id="compare-cancel-btn")
            example = gr.Button("Compare the example visits", size="sm", elem_id="compare-example-btn")
        status = gr.Markdown("Upload both visits to start.", elem_id="compare-status")
        token = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                model3d = gr.Model3D(
                    label="Thickness change on the baseline bones (blue thinner, red thicker)",
                    elem_id="change-model3d",
                    clear_color=(1.0, 1.0, 1.0, 1.0),
                    height=460,
                )
            with gr.Column(scale=1):
                colorbar = gr.Image(type="filepath", height=90, show_label=False)
                notes = gr.Markdown(elem_id="compare-notes")
        table = gr.Dataframe(
            headers=compare.CHANGE_HEADERS, label="Regional change", interactive=False, elem_id="change-table"
        )
        downloads = gr.File(label="Comparison results", file_count="multiple", interactive=False)
    c = SimpleNamespace(baseline=baseline, followup=followup, scheme=scheme, threshold=threshold, run=run)
    c.cancel, c.example, c.token, c.model3d = cancel, example, token, model3d
    _wire_compare(services, c, [status, token, table, notes, colorbar, downloads])


def _wire_compare(services: Services, c: SimpleNamespace, outputs: list) -> None:
    """Compare and example buttons in the analyses' queue lane, then the 3-D map as its own event; Cancel."""
    lane = {"concurrency_id": JOB_LANE, "concurrency_limit": 1}

    def run_job(base, follow, chosen_scheme, mm, request: gr.Request, progress=gr.Progress()):
        submitted = handlers.submitted_at(request)
        return compare.run_compare(services, base, follow, chosen_scheme, mm, _session(request), progress, submitted)

    def example_job(mm, request: gr.Request, progress=gr.Progress()):
        return compare.run_example(services, mm, _session(request), progress, handlers.submitted_at(request))

    events = [
        c.run.click(run_job, [c.baseline, c.followup, c.scheme, c.threshold], outputs, api_name="compare", **lane),
        c.example.click(example_job, [c.threshold], outputs, api_name="compare_example", **lane),
    ]
    for event in events:
        event.success(
            partial(compare.show_change_3d, services),
            c.token,
            c.model3d,
            api_name=False,
            concurrency_limit=None,
            show_progress="hidden",
        )

    def cancel_job(request: gr.Request):
        return handlers.cancel(services, _session(request))

    c.cancel.click(cancel_job, None, outputs[0], api_name="compare_cancel", concurrency_limit=None, cancels=events)

    def upload_arrived(path, request: gr.Request):  # removed with the session (see _wire_session)
        handlers.remember_upload(services, path, _session(request))

    for visit in (c.baseline, c.followup):
        visit.change(upload_arrived, visit, None, concurrency_limit=None, api_visibility="private")


def _session(request: gr.Request | None) -> str | None:
    return request.session_hash if request else None


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _slice_fn(store, plane: str):
    def show(token, index, opacity, overlay):
        return result_page.update_slice(store, token, plane, index, opacity, overlay)

    return show
