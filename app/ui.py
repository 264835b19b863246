"""The page: layout and event wiring only. ``build_demo(services, settings)`` returns the gr.Blocks."""

from __future__ import annotations

from functools import partial

import gradio as gr

from . import handlers, views
from .handlers import LAYER_CARTILAGE, LAYER_MENISCI, LAYER_SHAPE, OUTPUT_NAMES, Services
from .settings import AppSettings

NOTICE = (
    "**Research use only — not for clinical diagnosis.** Upload anonymised images only. Uploads are deleted once "
    "processed; results are deleted after {hours:g} hours."
)
FILE_TYPES = [".nii", ".nii.gz", ".gz", ".nrrd", ".mha", ".zip", ".dcm"]
LABEL_TYPES = [".nii", ".nii.gz", ".gz", ".nrrd", ".mha"]


def _model_choices(services: Services) -> tuple[list[str], str, str]:
    """Models to offer, the default, and a note on those that are not available."""
    if services.segmenter is None:
        return (
            ["(none: analysis of label maps only)"],
            "(none: analysis of label maps only)",
            ("No segmentation model is loaded: upload a label map with your image, or run the example."),
        )
    available, notes = [], []
    for name, ok, reason in services.segmenter.model_choices():
        (available.append(name) if ok else notes.append(f"- {name}: {reason}"))
    note = ("Unavailable models:\n" + "\n".join(notes)) if notes else ""
    return available, available[0], note


def build_demo(services: Services, settings: AppSettings) -> gr.Blocks:
    models, default_model, model_note = _model_choices(services)
    demo_only = services.segmenter is not None and all("demo" in m.lower() for m in models)
    with gr.Blocks(title="KneeScope", delete_cache=(3600, int(settings.retention_hours * 3600))) as demo:
        job_token = gr.State(None)
        gr.Markdown("# KneeScope — knee MRI: segmentation, cartilage thickness, T2")
        gr.Markdown(NOTICE.format(hours=settings.retention_hours), elem_id="notice")
        if demo_only:
            gr.Markdown(
                "⚠️ Only the **demo model** is available on this server: it is trained on synthetic knees and "
                "is **not for real MRI**.",
                elem_id="demo-notice",
            )
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.File(
                    label="Knee MRI (NIfTI, NRRD, MHA, zip of one DICOM series, DICOM)",
                    file_types=FILE_TYPES,
                    type="filepath",
                    elem_id="image-input",
                )
                with gr.Accordion("Already segmented? Add the label map", open=False):
                    labels = gr.File(label="Label map", file_types=LABEL_TYPES, type="filepath", elem_id="labels-input")
                    scheme = gr.Radio(
                        ["native", "canonical"],
                        value="native",
                        label="Label scheme",
                        info="native: the published knee nnU-Net's labels",
                    )
                with gr.Accordion("Options", open=False):
                    model = gr.Dropdown(models, value=default_model, label="Segmentation model")
                    if model_note:
                        gr.Markdown(model_note)
                    mirroring = gr.Checkbox(False, label="Test-time mirroring (slower, slightly smoother)")
                    t2 = gr.Radio(
                        ["Automatic", "On", "Off"],
                        value="Automatic",
                        label="qDESS T2 mapping",
                        info="Automatic: computed when the upload is a two-echo qDESS DICOM series",
                    )
                    shape = gr.Checkbox(
                        value=services.shape_options is not None and _has_gpu(),
                        interactive=services.shape_options is not None,
                        label="Neural shape model + BScore (about 10 s on a GPU, many minutes on a CPU)",
                        info=services.shape_reason or "Fits the ShapeMedKnee femur model (bone + cartilage).",
                    )
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run-btn")
                    example = gr.Button("Run the example", elem_id="example-btn")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel-btn")
                status = gr.Markdown("Upload an image to start.", elem_id="status")
            with gr.Column(scale=2):
                # Model3D must stay visible: it draws nothing when its value arrives inside a hidden tab.
                with gr.Row():
                    axial = gr.Image(label="Axial", type="numpy", format="png", elem_id="slice-axial", height=300)
                    coronal = gr.Image(label="Coronal", type="numpy", format="png", elem_id="slice-coronal", height=300)
                    sagittal = gr.Image(
                        label="Sagittal", type="numpy", format="png", elem_id="slice-sagittal", height=300
                    )
                with gr.Row():
                    axial_slider = gr.Slider(0, 1000, value=0, step=1, label="Axial slice")
                    coronal_slider = gr.Slider(0, 1000, value=0, step=1, label="Coronal slice")
                    sagittal_slider = gr.Slider(0, 1000, value=0, step=1, label="Sagittal slice")
                with gr.Row():
                    opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Overlay opacity")
                    overlay = gr.Radio(["Labels", "T2"], value="Labels", label="Overlay")
                legend = gr.HTML(views.legend_html())
                with gr.Row():
                    with gr.Column(scale=3):
                        model3d = gr.Model3D(
                            label="Bones coloured by cartilage thickness",
                            elem_id="model3d",
                            clear_color=(1.0, 1.0, 1.0, 1.0),
                            height=460,
                        )
                    with gr.Column(scale=1):
                        colorbar = gr.Image(label="Thickness (mm)", type="filepath", height=90, show_label=False)
                        layers = gr.CheckboxGroup(
                            [LAYER_CARTILAGE, LAYER_MENISCI, LAYER_SHAPE], value=[LAYER_MENISCI], label="Show"
                        )
                        colour_by = gr.Radio(
                            [handlers.COLOUR_THICKNESS, handlers.COLOUR_T2],
                            value=handlers.COLOUR_THICKNESS,
                            label="Colour bones by",
                            info="T2: mean cartilage T2 along each bone normal (qDESS only)",
                        )
                        viewer_button = gr.Button("Interactive 3-D viewer", size="sm", elem_id="viewer-btn")
                        viewer_link = gr.HTML(elem_id="viewer-link-box")
                        shape_summary = gr.Markdown(elem_id="shape-summary")
                        warnings = gr.Markdown(elem_id="qc-warnings")
                with gr.Tab("Metrics"):
                    thickness_table = gr.Dataframe(
                        headers=views.THICKNESS_HEADERS,
                        label="Cartilage thickness",
                        elem_id="thickness-table",
                        interactive=False,
                    )
                    structure_table = gr.Dataframe(
                        headers=views.STRUCTURE_HEADERS, label="Structures", interactive=False
                    )
                    t2_table = gr.Dataframe(headers=views.T2_HEADERS, label="T2 (qDESS)", interactive=False)
                with gr.Tab("Downloads"):
                    downloads = gr.File(label="Results", file_count="multiple", interactive=False, elem_id="downloads")

        components = {
            "status": status,
            "job_token": job_token,
            "axial": axial,
            "coronal": coronal,
            "sagittal": sagittal,
            "axial_slider": axial_slider,
            "coronal_slider": coronal_slider,
            "sagittal_slider": sagittal_slider,
            "colorbar": colorbar,
            "thickness_table": thickness_table,
            "structure_table": structure_table,
            "t2_table": t2_table,
            "warnings": warnings,
            "downloads": downloads,
            "legend": legend,
            "shape_summary": shape_summary,
        }
        outputs = [components[name] for name in OUTPUT_NAMES]

        def run_job(
            image_path,
            labels_path,
            scheme,
            model,
            mirroring,
            t2,
            opacity,
            shape,
            request: gr.Request,
            progress=gr.Progress(),
        ):
            yield from handlers.run_analysis(
                services,
                image_path,
                labels_path,
                scheme,
                model,
                mirroring,
                t2,
                opacity,
                request.session_hash if request else None,
                progress,
                shape=shape,
            )

        def run_example(model, mirroring, opacity, shape, request: gr.Request, progress=gr.Progress()):
            image_path, labels_path = handlers.example_inputs(services)
            yield from handlers.run_analysis(
                services,
                image_path,
                labels_path,
                "canonical",
                model,
                mirroring,
                "Automatic",
                opacity,
                request.session_hash if request else None,
                progress,
                uploaded=False,
                shape=shape,
            )

        run_event = run.click(
            run_job,
            [image, labels, scheme, model, mirroring, t2, opacity, shape],
            outputs,
            api_name="run",
            concurrency_id="gpu",
            concurrency_limit=1,
        )
        example_event = example.click(
            run_example,
            [model, mirroring, opacity, shape],
            outputs,
            api_name="example",
            concurrency_id="gpu",
            concurrency_limit=1,
        )

        for event in (run_event, example_event):
            event.success(
                partial(handlers.show_3d, services),
                [job_token, layers, colour_by],
                model3d,
                api_name=False,
                concurrency_limit=None,
                show_progress="hidden",
            )

        def viewer(token, request: gr.Request):
            return handlers.open_viewer(services, token, dict(request.headers) if request else {})

        viewer_button.click(viewer, job_token, viewer_link, api_name="viewer", concurrency_limit=None)

        def cancel_job(request: gr.Request):
            return handlers.cancel(services, request.session_hash if request else None)

        cancel.click(
            cancel_job, None, status, api_name="cancel", concurrency_limit=None, cancels=[run_event, example_event]
        )

        for plane, image_out, slider in (
            ("axial", axial, axial_slider),
            ("coronal", coronal, coronal_slider),
            ("sagittal", sagittal, sagittal_slider),
        ):
            slider.input(
                _slice_fn(services, plane),
                [job_token, slider, opacity, overlay],
                image_out,
                concurrency_limit=None,
                show_progress="hidden",
                api_name=f"slice_{plane}",
            )
        for control in (opacity, overlay):
            control.change(
                partial(handlers.update_all_slices, services),
                [job_token, axial_slider, coronal_slider, sagittal_slider, opacity, overlay],
                [axial, coronal, sagittal],
                concurrency_limit=None,
                show_progress="hidden",
                api_visibility="private",
            )
        image.change(handlers.t2_choice_for_upload, image, t2, concurrency_limit=None, api_visibility="private")
        for control in (layers, colour_by):
            control.change(
                partial(handlers.update_layers, services),
                [job_token, layers, colour_by],
                [model3d, colorbar],
                concurrency_limit=None,
                api_name="layers" if control is layers else False,
            )
    return demo


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _slice_fn(services: Services, plane: str):
    def show(token, index, opacity, overlay):
        return handlers.update_slice(services, token, plane, index, opacity, overlay)

    return show
