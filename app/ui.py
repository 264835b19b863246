"""The page: layout and event wiring only. ``build_demo(services, settings)`` returns the gr.Blocks.

Two top-level tabs: "Analyse a knee" (inputs, the one status area, and the results in tabs of their own, so the
page fits a laptop screen) and "Compare two visits". Layout in builders per area, wiring in functions per kind of
event (the jobs, the uploads, the cheap views). Every output of a job hides Gradio's per-panel progress overlay
(``show_progress="hidden"``): the status area (app/status.py) is the one place that shows progress.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from . import compare, handlers, result_page, slice_images, slice_view
from .handlers import OUTPUT_NAMES, UPLOAD_OUTPUTS, PageOptions
from .jobs import JOB_LANE
from .messages import without_paths
from .result_page import (
    COLOUR_T2,
    COLOUR_THICKNESS,
    DEFAULT_VIEW,
    LAYER_CARTILAGE,
    LAYER_MENISCI,
    LAYER_SHAPE,
    OVERLAY_LABELS,
    OVERLAY_T2,
    TITLES,
    VIEW_PRESETS,
)
from .settings import AppSettings
from .startup import Services
from .status import idle

NOTICE = (
    "**Research use only — not for clinical diagnosis.** Upload anonymised images only. Uploads are deleted when "
    "you cancel or leave the page; uploads and results are deleted after {hours:g} hours."
)
FILE_TYPES = [".nii", ".nii.gz", ".gz", ".nrrd", ".mha", ".zip", ".dcm"]
LABEL_TYPES = [".nii", ".nii.gz", ".gz", ".nrrd", ".mha", ".dcm"]  # .dcm: a DICOM-SEG
NO_MODEL = "(none: analysis of label maps only)"
#: The page's style sheet (status area, input card, slice views, colour bars, tables), given to ``launch``.
PAGE_CSS = Path(__file__).with_name("page.css")
HIDDEN = {"show_progress": "hidden"}
#: Run in the browser as a job is sent: the status area says at once that it is waiting (a job queues behind another
#: one, and Gradio's own queue display is hidden with the per-panel overlays); the job's first update replaces it.
WAITING_JS = """(...args) => {
  for (const id of ['status', 'compare-status']) {
    const area = document.querySelector(`#${id} .ks-status`);
    if (area && area.offsetParent !== null) {
      area.className = 'ks-status ks-running';
      area.textContent = 'Starting… (if another analysis is running, this one waits for its turn here)';
    }
  }
  return args;
}"""


def _model_choices(services: Services) -> tuple[list[str], str, str]:
    """Models to offer, the default, and a note on those that are not available (no server paths or commands: the
    full reasons are in the server log)."""
    if not services.engine.can_segment:
        note = "No segmentation model is loaded: upload a label map with your image, or run the example."
        return [NO_MODEL], NO_MODEL, note
    available, missing = [], []
    for name, ok, _reason in services.engine.model_choices():
        (available.append(name) if ok else missing.append(name))
    note = f"Not installed on this server: {', '.join(missing)}." if missing else ""
    return available, available[0], note


def shape_option_info(services: Services) -> str:
    """The shape model option's help: what it does, or in one plain sentence why it is unavailable."""
    if services.shape_available:
        return "Fits the ShapeMedKnee femur model (bone + cartilage) and reports its BScore."
    return "Unavailable on this server: the shape model's weights are not installed."


def build_demo(services: Services, settings: AppSettings) -> gr.Blocks:
    with gr.Blocks(title="KneeScope", delete_cache=(3600, int(settings.retention_hours * 3600))) as demo:
        with gr.Row(elem_id="header"):
            gr.Markdown("## KneeScope <small>knee MRI: segmentation, cartilage thickness, T2</small>", elem_id="title")
            gr.Markdown(NOTICE.format(hours=settings.retention_hours), elem_id="notice")
        with gr.Tabs(elem_id="main-tabs"):
            with gr.Tab("Analyse a knee", id="analyse", elem_id="analyse-tab"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=330, elem_id="inputs-column"):
                        inputs = _inputs_column(services)
                    with gr.Column(scale=3, elem_id="results-column"):
                        results = _results_column()
            with gr.Tab("Compare two visits", id="compare", elem_id="compare-tab"):
                _compare_tab(services)
        results.job_token = gr.State(None)
        _wire_jobs(services, inputs, results)
        _wire_uploads(services, demo, inputs, results)
        _wire_views(services, inputs, results)
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
        label="Knee MRI (NIfTI, NRRD, MHA, zip of one DICOM series, DICOM) — or a label map",
        file_types=FILE_TYPES,
        type="filepath",
        elem_id="image-input",
        height=110,
    )
    with gr.Accordion("Already segmented? Add the label map", open=False):
        c.labels = gr.File(
            label="Label map", file_types=LABEL_TYPES, type="filepath", elem_id="labels-input", height=100
        )
        c.scheme = gr.Radio(
            ["auto", "native", "canonical"],
            value="auto",
            label="Label scheme",
            info="auto: told apart by where the bones are; native: the published knee nnU-Net's labels",
        )
    c.card = gr.HTML("", elem_id="input-card")
    with gr.Accordion("Options", open=False):
        c.model = gr.Dropdown(models, value=default_model, label="Segmentation model")
        if model_note:
            gr.Markdown(model_note, elem_id="model-note")
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
            info=without_paths(shape_option_info(services)),
        )
    with gr.Row():
        c.run = gr.Button("Run", variant="primary", elem_id="run-btn")
        c.cancel = gr.Button("Cancel", variant="stop", elem_id="cancel-btn")
    with gr.Row():
        c.example = gr.Button("Run the example", elem_id="example-btn", size="sm")
        c.qdess_example = gr.Button("Run the qDESS example", elem_id="qdess-example-btn", size="sm")
    c.status = gr.HTML(idle(), elem_id="status")
    return c


def _results_column() -> SimpleNamespace:
    r = SimpleNamespace()
    with gr.Tabs(elem_id="result-tabs"):
        with gr.Tab("Slices", id="slices", elem_id="slices-tab"):
            with gr.Row(elem_id="slice-views"):
                for plane in slice_images.PLANES:
                    view = gr.HTML(
                        slice_view.view_html(None, plane, 0),
                        elem_id=f"slice-{plane}",
                        js_on_load=slice_view.VIEW_JS,
                    )
                    setattr(r, plane, view)
            with gr.Row():
                for plane in slice_images.PLANES:
                    slider = gr.Slider(
                        1, 1000, value=1, step=1, label=f"{plane.capitalize()} slice", elem_id=f"{plane}-slider"
                    )
                    setattr(r, f"{plane}_slider", slider)
            with gr.Row():
                r.overlay = gr.Radio(
                    [OVERLAY_LABELS, OVERLAY_T2], value=OVERLAY_LABELS, label="Overlay", scale=1, elem_id="overlay"
                )
                r.opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Overlay opacity", scale=1, elem_id="opacity")
                r.level = gr.Slider(0, 1, value=0.5, step=0.02, label="Window level (0.5 = automatic)", scale=1)
                r.width = gr.Slider(0.1, 2, value=1.0, step=0.05, label="Window width (1 = automatic)", scale=1)
            r.legend = gr.HTML(slice_images.legend_html(), elem_id="legend-box")
        # Model3D draws nothing when its value arrives while its tab is hidden: the tab's select event sends it again.
        with gr.Tab("3-D", id="3d", elem_id="three-d-tab") as r.tab_3d:
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    r.model3d = gr.Model3D(
                        label=TITLES[COLOUR_THICKNESS],
                        elem_id="model3d",
                        clear_color=(1.0, 1.0, 1.0, 1.0),
                        height=520,
                        camera_position=VIEW_PRESETS[DEFAULT_VIEW].camera,
                    )
                with gr.Column(scale=1, min_width=240):
                    r.view = gr.Radio(list(VIEW_PRESETS), value=DEFAULT_VIEW, label="View", elem_id="view-preset")
                    r.view_hint = gr.Markdown(VIEW_PRESETS[DEFAULT_VIEW].hint, elem_id="view-hint")
                    r.colorbar = gr.HTML("", elem_id="colorbar-box")
                    r.layers = gr.CheckboxGroup(
                        [LAYER_CARTILAGE, LAYER_MENISCI, LAYER_SHAPE], value=[LAYER_MENISCI], label="Show"
                    )
                    r.colour_by = gr.Radio(
                        [COLOUR_THICKNESS, COLOUR_T2],
                        value=COLOUR_THICKNESS,
                        label="Colour bones by",
                        info="T2: mean cartilage T2 along each bone normal (qDESS or MESE series only)",
                        elem_id="colour-by",
                    )
                    r.viewer_button = gr.Button("Interactive 3-D viewer", size="sm", elem_id="viewer-btn")
                    r.viewer_link = gr.HTML(elem_id="viewer-link-box")
        with gr.Tab("Thickness maps", id="maps", elem_id="maps-tab"):
            r.maps = gr.Image(
                label="Flattened cartilage thickness maps (as in the PDF report)",
                type="filepath",
                elem_id="thickness-maps",
                height=460,
                buttons=["fullscreen"],
            )
        with gr.Tab("Numbers", id="numbers", elem_id="numbers-tab"):
            r.warnings = gr.HTML("", elem_id="qc-warnings-box")
            r.numbers = gr.HTML("<p>Run an analysis to see its numbers.</p>", elem_id="numbers-box")
        with gr.Tab("Files", id="files", elem_id="files-tab"):
            r.downloads = gr.File(
                label="Results: PDF report (+ PNG preview), DICOM-SEG for DICOM inputs, data files",
                file_count="multiple",
                interactive=False,
                elem_id="downloads",
                elem_classes=["ks-readonly-files"],
            )
    return r


def _wire_jobs(services: Services, c: SimpleNamespace, r: SimpleNamespace) -> None:
    """The heavy events: one queue lane ("gpu") for every analysis, then the 3-D view as its own event."""
    targets = {"status": c.status, **{name: getattr(r, name) for name in OUTPUT_NAMES if name != "status"}}
    outputs = [targets[name] for name in OUTPUT_NAMES]
    lane = {"concurrency_id": JOB_LANE, "concurrency_limit": 1, "js": WAITING_JS, **HIDDEN}

    def options(scheme, model, mirroring, t2, opacity, shape) -> PageOptions:
        return PageOptions(scheme, model, bool(mirroring), t2, float(opacity), bool(shape))

    def run_job(image, labels, scheme, model, mirroring, t2, opacity, shape, request: gr.Request):
        chosen = options(scheme, model, mirroring, t2, opacity, shape)
        submitted = handlers.submitted_at(request)
        events = handlers.run_upload(services, image, labels, chosen, _session(request), submitted)
        yield from handlers.with_error_banner(events)

    def example_job(which: str, t2: str):
        def run(model, mirroring, opacity, shape, request: gr.Request):
            chosen = options("canonical", model, mirroring, t2, opacity, shape)
            submitted = handlers.submitted_at(request)
            events = handlers.run_example(services, which, chosen, _session(request), submitted)
            yield from handlers.with_error_banner(events)

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
            [r.job_token, r.layers, r.colour_by, r.view],
            r.model3d,
            api_name=False,
            concurrency_limit=None,
            **HIDDEN,
        )

    def cancel_job(request: gr.Request):
        message = handlers.cancel(services, _session(request))
        return idle(message), None, None  # the uploads are gone from the server: clear them from the page too

    c.cancel.click(
        cancel_job,
        None,
        [c.status, c.image, c.labels],
        api_name="cancel",
        concurrency_limit=None,
        cancels=events,
        **HIDDEN,
    )


def _wire_uploads(services: Services, demo: gr.Blocks, c: SimpleNamespace, r: SimpleNamespace) -> None:
    """Uploads belong to the page session that made them: noted on arrival, removed when the session ends; each one
    is read at once for the input card and the preview."""
    if services.uploads is not None:
        services.uploads.track(demo.upload_file_set)
    targets = {"card": c.card, "t2": c.t2, **{name: getattr(r, name) for name in UPLOAD_OUTPUTS[2:]}}
    outputs = [targets[name] for name in UPLOAD_OUTPUTS]

    def arrived(image, labels, request: gr.Request):
        for path in (image, labels):
            handlers.remember_upload(services, path, _session(request))
        return handlers.inspect_uploads(services, image, labels)

    for box in (c.image, c.labels):
        box.change(
            arrived,
            [c.image, c.labels],
            outputs,
            concurrency_limit=2,
            concurrency_id="inspect",
            api_visibility="private",
            **HIDDEN,
        )

    def session_ended(request: gr.Request):
        handlers.session_ended(services, _session(request))

    demo.unload(session_ended)


def _wire_views(services: Services, c: SimpleNamespace, r: SimpleNamespace) -> None:
    """Cheap events that only redraw from the job's result (or the upload's preview) in memory: sliders, window,
    overlay, layers, view presets, viewer."""
    store = services.store
    cheap = {"concurrency_limit": None, **HIDDEN}

    def viewer(token):
        return result_page.open_viewer(store, services.viewers, token)

    r.viewer_button.click(viewer, r.job_token, r.viewer_link, api_name="viewer", **cheap)
    display = [r.opacity, r.overlay, r.level, r.width]
    for plane in slice_images.PLANES:
        slider = getattr(r, f"{plane}_slider")

        def show(token, index, opacity, overlay, level, width, plane=plane):
            stack = handlers.stack_for(services, token)
            return result_page.update_slice(stack, plane, index, opacity, overlay, level, width)

        slider.input(show, [r.job_token, slider, *display], getattr(r, plane), api_name=f"slice_{plane}", **cheap)
    sliders = [getattr(r, f"{plane}_slider") for plane in slice_images.PLANES]

    def show_all(token, ia, ic, is_, opacity, overlay, level, width):
        stack = handlers.stack_for(services, token)
        views = result_page.update_all_slices(stack, ia, ic, is_, opacity, overlay, level, width)
        return *views, result_page.legend_for(stack, overlay)

    for control in display:
        control.change(
            show_all,
            [r.job_token, *sliders, *display],
            [*(getattr(r, plane) for plane in slice_images.PLANES), r.legend],
            api_visibility="private",
            **cheap,
        )
    for control in (r.layers, r.colour_by, r.view):
        control.change(
            partial(result_page.update_layers, store),
            [r.job_token, r.layers, r.colour_by, r.view],
            [r.model3d, r.colorbar, r.view_hint],
            api_name="layers" if control is r.layers else False,
            **cheap,
        )
    # A value that arrived while the tab was hidden is not drawn: clear it, then send it again now that it shows.
    r.tab_3d.select(lambda: None, None, r.model3d, api_name=False, **cheap).then(
        partial(result_page.show_3d, store),
        [r.job_token, r.layers, r.colour_by, r.view],
        r.model3d,
        api_name=False,
        **cheap,
    )


def _compare_tab(services: Services) -> None:
    """The "Compare two visits" tab: two uploads (results zips, MRIs or label maps) -> change map, table, files."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=330):
            gr.Markdown(
                "Cartilage thickness change between two visits of the **same knee** (follow-up minus baseline). "
                "Each visit: the results zip of an earlier analysis, an MRI or a label map.",
                elem_id="compare-intro",
            )
            baseline = gr.File(
                label="Baseline", file_types=FILE_TYPES, type="filepath", elem_id="baseline-input", height=130
            )
            followup = gr.File(
                label="Follow-up", file_types=FILE_TYPES, type="filepath", elem_id="followup-input", height=130
            )
            with gr.Row():
                run = gr.Button("Compare", variant="primary", elem_id="compare-btn")
                cancel = gr.Button("Cancel", variant="stop", elem_id="compare-cancel-btn")
            example = gr.Button("Compare the example visits", size="sm", elem_id="compare-example-btn")
            status = gr.HTML(
                idle("Upload both visits to start, or compare the example visits."), elem_id="compare-status"
            )
            with gr.Accordion("Options", open=False):
                scheme = gr.Radio(["auto", "native", "canonical"], value="auto", label="Label scheme (label maps)")
                threshold = gr.Number(0.2, minimum=0, step=0.05, label="Thinned / thickened beyond (mm)")
            gr.Markdown(compare.EXAMPLE_DESCRIPTION, elem_id="compare-example-note")
        with gr.Column(scale=3):
            token = gr.State(None)
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    model3d = gr.Model3D(
                        label="Thickness change on the baseline bones (blue thinner, red thicker)",
                        elem_id="change-model3d",
                        clear_color=(1.0, 1.0, 1.0, 1.0),
                        height=440,
                        camera_position=VIEW_PRESETS[DEFAULT_VIEW].camera,
                    )
                with gr.Column(scale=1, min_width=240):
                    colorbar = gr.HTML("", elem_id="change-colorbar")
                    notes = gr.Markdown(elem_id="compare-notes")
            table = gr.HTML("", elem_id="change-table-box")
            downloads = gr.File(
                label="Comparison results",
                file_count="multiple",
                interactive=False,
                elem_id="compare-downloads",
                elem_classes=["ks-readonly-files"],
            )
    c = SimpleNamespace(baseline=baseline, followup=followup, scheme=scheme, threshold=threshold, run=run)
    c.cancel, c.example, c.token, c.model3d = cancel, example, token, model3d
    _wire_compare(services, c, [status, token, table, notes, colorbar, downloads])


def _wire_compare(services: Services, c: SimpleNamespace, outputs: list) -> None:
    """Compare and example buttons in the analyses' queue lane, then the 3-D map as its own event; Cancel."""
    lane = {"concurrency_id": JOB_LANE, "concurrency_limit": 1, "js": WAITING_JS, **HIDDEN}

    def run_job(base, follow, chosen_scheme, mm, request: gr.Request):
        submitted = handlers.submitted_at(request)
        events = compare.run_compare(services, base, follow, chosen_scheme, mm, _session(request), submitted)
        yield from compare.with_error_banner(events)

    def example_job(mm, request: gr.Request):
        events = compare.run_example(services, mm, _session(request), handlers.submitted_at(request))
        yield from compare.with_error_banner(events)

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
            **HIDDEN,
        )

    def cancel_job(request: gr.Request):
        return idle(handlers.cancel(services, _session(request)))

    c.cancel.click(
        cancel_job, None, outputs[0], api_name="compare_cancel", concurrency_limit=None, cancels=events, **HIDDEN
    )

    def upload_arrived(path, request: gr.Request):  # removed with the session (see _wire_uploads)
        handlers.remember_upload(services, path, _session(request))

    for visit in (c.baseline, c.followup):
        visit.change(upload_arrived, visit, None, concurrency_limit=None, api_visibility="private", **HIDDEN)


def _session(request: gr.Request | None) -> str | None:
    return request.session_hash if request else None


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
