"""``python -m pipeline analyze``: one knee, MRI and/or label map -> every output file."""

from __future__ import annotations

import argparse
import sys
import threading

from ..config import BACKENDS, PRECISIONS
from ..errors import KneePipelineError
from .common import progress_bar, summary

T2_CHOICES = {"auto": None, "on": True, "off": False}


def add_parser(sub) -> None:
    analyze = sub.add_parser("analyze", help="segment and analyse a knee MRI, or analyse a given segmentation")
    analyze.add_argument("image", nargs="?", help="the MRI (NIfTI, NRRD, MHA, DICOM folder or zip)")
    analyze.add_argument(
        "--labels", help="existing segmentation (NIfTI, NRRD or MHA label map, or a DICOM-SEG .dcm); skips segmenting"
    )
    add_label_scheme(analyze)
    add_model_options(analyze)
    add_stage_options(analyze)
    analyze.add_argument("--case-id", help="name of the case in the outputs (default: the input file's stem)")
    analyze.add_argument("--out", required=True, help="output folder")
    analyze.add_argument("--no-zip", action="store_true", help="skip the results zip")
    analyze.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    analyze.set_defaults(func=run)


def add_label_scheme(parser: argparse.ArgumentParser, *, applies_to: str = "labels of --labels") -> None:
    parser.add_argument(
        "--label-scheme",
        default="auto",
        help=f"{applies_to}: 'auto' (default: native or canonical, told apart by where the bones are), "
        "'native' (published knee nnU-Net), 'canonical' (KneeScope's), or a JSON file",
    )


def add_model_options(parser: argparse.ArgumentParser, *, demo_fallback: bool = True) -> None:
    fallback = "the demo model stands in if its weights are unavailable" if demo_fallback else "no demo fallback"
    from ..segmentation.registry import SEGMENTATION_MODELS

    parser.add_argument(
        "--model",
        choices=SEGMENTATION_MODELS,
        default="fullres",
        help=f"segmentation model (default fullres; {fallback}); goyal-*: the predecessor's 2-D U-Nets "
        "(goyal-sagittal was its default)",
    )
    parser.add_argument(
        "--model-dir", default=None, help="local copy of the model in its published layout ($KNEESCOPE_MODEL_DIR)"
    )
    parser.add_argument("--mirroring", action="store_true", help="test-time mirroring (up to 8x slower)")
    parser.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cuda, mps or cpu")
    parser.add_argument(
        "--tile-step", type=float, default=0.5, help="sliding-window step as a fraction of the patch (default 0.5)"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="what runs the network on a CPU: auto (default: the fastest one measured to agree with PyTorch fp32 on "
        "this machine, measured once per model), torch, onnx (ONNX Runtime) or openvino",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto (default; fp32 unless --backend auto finds bf16 agrees), fp32, or bf16 (CPUs with native bf16)",
    )
    parser.add_argument(
        "--skip-empty-tiles",
        action="store_true",
        help="skip sliding-window tiles wholly outside the knee's bounding box (found from the image)",
    )


def add_stage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--t2",
        choices=tuple(T2_CHOICES),
        default="auto",
        help="qDESS T2: auto (when the image is a two-echo qDESS DICOM series), on (say why when impossible), off",
    )
    parser.add_argument("--shape-model", action="store_true", help="fit the neural shape model and compute the BScore")


def inference_options(args: argparse.Namespace):
    from ..config import InferenceOptions

    return InferenceOptions(
        device=args.device,
        mirroring=args.mirroring,
        tile_step_size=args.tile_step,
        backend=args.backend,
        precision=args.precision,
        skip_empty_tiles=args.skip_empty_tiles,
    )


def engine_spec(args: argparse.Namespace, *, fallback_to_demo: bool = True):
    """The engine these arguments ask for (the demo model stands in for missing weights unless a model dir is
    given or ``fallback_to_demo`` is off)."""
    from ..engine_spec import EngineSpec

    return EngineSpec(
        args.model,
        args.model_dir,
        inference_options(args),
        download=True,
        fallback_to_demo=fallback_to_demo and args.model != "demo" and args.model_dir is None,
    )


def analysis_request(args: argparse.Namespace, **inputs):
    """The per-case options of ``analyze`` (and ``batch``'s defaults) as a request; inputs given by keyword."""
    from ..request import AnalysisRequest

    return AnalysisRequest(
        label_scheme=args.label_scheme,
        t2=T2_CHOICES[args.t2],
        shape_model=args.shape_model,
        case_id=getattr(args, "case_id", None),
        **inputs,
    )


def build_engine(args: argparse.Namespace, *, segment: bool):
    """The engine for these arguments, a model loaded only when the labels must be segmented; the demo-model
    notice is printed here, once."""
    from ..engine import Engine

    engine = Engine.from_spec(engine_spec(args), segment=segment)
    if engine.notice:
        print(f"NOTICE: {engine.notice}", file=sys.stderr)
    elif engine.is_demo:
        print("NOTICE: using the DEMO model (synthetic knees only; meaningless on real MRI).", file=sys.stderr)
    return engine


def run(args: argparse.Namespace) -> int:
    from ..diskspace import ensure_free_space, results_bytes
    from ..io.inputs import read_inputs
    from ..report.outputs import preload_writers
    from ..segmentation.loading import segmentation_cost

    if args.image is None and args.labels is None:
        raise KneePipelineError("Give the MRI to segment (python -m pipeline analyze MRI --out OUT/), or --labels.")
    request = analysis_request(args, image=args.image, labels=args.labels)
    # Inputs are read (once) before a model is loaded: a wrong, oversized or truncated file costs no model load; the
    # segmentation's memory cost is read from the model's files.
    cost = None
    if request.needs_segmentation:
        spec = engine_spec(args)
        cost = segmentation_cost(spec.model, spec.folder, fallback_to_demo=spec.fallback_to_demo)
    inputs = read_inputs(request.image, request.labels, request.label_scheme, request.limits, image_cost=cost)
    request = request.with_changes(image=inputs.image, labels=inputs.labels)
    # The writers' imports load in the background while the knee is measured (a one-case process); not while the
    # inputs are read, which they would slow down, and not for an input that is refused.
    threading.Thread(target=preload_writers, name="preload-writers", daemon=True).start()
    grid = inputs.image if inputs.image is not None else inputs.labels.volume  # type: ignore[union-attr]
    ensure_free_space(args.out, results_bytes(grid.array.size))  # before a model load and an analysis
    engine = build_engine(args, segment=request.needs_segmentation)
    if args.shape_model:
        from ..outcome import NotComputed

        shape = engine.shape_options()
        if isinstance(shape, NotComputed):
            print(f"NOTICE: {shape.reason}", file=sys.stderr)
    # The bar starts after loading, so a notice above is not torn through by it.
    result = engine.run(request, progress=None if args.quiet else progress_bar())
    files = result.write(args.out, make_zip=not args.no_zip)
    print(summary(result, files))
    return 0
