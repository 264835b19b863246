"""Command line: ``python -m pipeline analyze|weights|example|synth``.

Errors the pipeline raises on purpose are printed as one line (exit code 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .errors import KneePipelineError


def _progress_bar():
    from tqdm import tqdm

    bar = tqdm(total=100, bar_format="{l_bar}{bar}| {n_fmt}% [{elapsed}]", file=sys.stderr)

    def report(fraction: float, message: str) -> None:
        bar.set_description(message[:40].ljust(40))
        bar.update(max(0, round(fraction * 100) - bar.n))
        if fraction >= 1.0:
            bar.close()

    return report


def _summary(result, files: dict) -> str:
    lines = [f"Case {result.case_id}: {result.laterality.side} knee"]
    for region, r in result.cartilage.items():
        t = r.thickness_mm
        if t is not None:
            lines.append(
                f"  {region:32s} thickness {t.mean:5.2f} ± {t.std:4.2f} mm (median {t.median:4.2f}, n={t.n_vertices})"
            )
        else:
            lines.append(f"  {region:32s} not measured")
    for warning in result.warnings:
        lines.append(f"  QC: {warning}")
    if files:
        lines.append(f"Results written to {Path(files['results.json']).parent.resolve()}")
        if "zip" in files:
            lines.append(f"  all files: {files['zip']}")
    return "\n".join(lines)


def cmd_analyze(args: argparse.Namespace) -> int:
    if args.labels is None:
        result = _segment_and_analyze(args)
    else:
        from .analysis import analyze_labels

        progress = None if args.quiet else _progress_bar()
        result = analyze_labels(args.labels, scheme=args.label_scheme, image=args.image, progress=progress)
    files = result.write(args.out, make_zip=not args.no_zip)
    print(_summary(result, files))
    return 0


def _segment_and_analyze(args: argparse.Namespace):
    """MRI -> segmentation -> analysis with the engine; the demo model stands in (with a notice) when needed."""
    from .engine import Engine
    from .io import image_kind

    if args.image is None:
        raise KneePipelineError("Give the MRI to segment (python -m pipeline analyze MRI --out OUT/), or --labels.")
    image_kind(args.image)  # refuse a wrong file before spending seconds on loading a model
    engine = Engine.load(
        args.model,
        model_dir=args.model_dir,
        device=args.device,
        mirroring=args.mirroring,
        tile_step_size=args.tile_step,
        fallback_to_demo=args.model != "demo" and args.model_dir is None,
    )
    if engine.notice:
        print(f"NOTICE: {engine.notice}", file=sys.stderr)
    elif engine.is_demo:
        print("NOTICE: using the DEMO model (synthetic knees only; meaningless on real MRI).", file=sys.stderr)
    # The bar starts after loading, so a notice above is not torn through by it.
    return engine.analyze(args.image, progress=None if args.quiet else _progress_bar(), mirroring=args.mirroring)


def cmd_weights(args: argparse.Namespace) -> int:
    from . import weights

    manifest = weights.load_manifest()
    names = args.models or [n for n, e in manifest.items() if args.action == "list" or e.kind == "nnunet"]
    for name in names:
        entry = weights.get_entry(name, manifest)
        if args.action == "list":
            pinned = "" if entry.pinned else "  [revision not pinned]"
            gated = "  [gated: needs HF_TOKEN]" if entry.gated else ""
            print(f"{name:10s} {weights.model_status(entry):15s} {entry.title}{pinned}{gated}")
            continue
        resolved = weights.resolve_model(entry, model_dir=args.model_dir, download=args.action == "download")
        info = resolved.describe()
        print(f"{name}: OK ({resolved.origin}, revision {resolved.revision}) {resolved.folder}")
        for path, digest in info["checkpoints"].items():
            print(f"  {path}  sha256 {digest}")
    if args.action == "list":
        print(f"cache: {weights.weights_dir()} (KNEESCOPE_WEIGHTS_DIR)")
    return 0


def cmd_example(args: argparse.Namespace) -> int:
    from .analysis import analyze_labels
    from .io import write_volume
    from .synthetic import make_phantom, render_mr

    phantom = make_phantom(side=args.side)
    out = Path(args.out)
    image = render_mr(phantom.labels)
    write_volume(image, out / "input" / f"synthetic_{args.side}_knee.nrrd")
    write_volume(phantom.labels, out / "input" / f"synthetic_{args.side}_knee_labels.nrrd")
    result = analyze_labels(
        phantom.labels,
        scheme="canonical",
        image=image,
        case_id=f"synthetic_{args.side}_knee",
        progress=None if args.quiet else _progress_bar(),
    )
    files = result.write(out)
    print(_summary(result, files))
    print(f"Synthetic example (not real MRI); truth: {phantom.truth_thickness_mm} mm")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from .io import write_volume
    from .synthetic import PhantomSpec, make_phantom, render_mr

    spec = PhantomSpec(side=args.side, femoral_mm=args.thickness, tibial_mm=args.thickness, patellar_mm=args.thickness)
    phantom = make_phantom(spec)
    out = Path(args.out)
    write_volume(phantom.labels, out / "labels.nrrd")
    if args.image:
        write_volume(render_mr(phantom.labels, seed=args.seed), out / "image.nrrd")
    print(f"Wrote synthetic {args.side} knee (cartilage {args.thickness} mm) to {out.resolve()}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import healthy, report, run_checks

    checks = run_checks(Path(args.workdir) if args.workdir else None)
    print(report(checks))
    return 0 if healthy(checks) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description="KneeScope knee MRI analysis")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    analyze = sub.add_parser("analyze", help="segment and analyse a knee MRI, or analyse a given segmentation")
    analyze.add_argument("image", nargs="?", help="the MRI (NIfTI, NRRD, MHA, DICOM folder or zip)")
    analyze.add_argument("--labels", help="existing segmentation (NIfTI, NRRD or MHA label map); skips segmenting")
    analyze.add_argument(
        "--model",
        choices=("fullres", "cascade", "demo"),
        default="fullres",
        help="segmentation model (default fullres; the demo model stands in if its weights are unavailable)",
    )
    analyze.add_argument(
        "--model-dir",
        default=None,
        help="local copy of the model in its published layout (default $KNEESCOPE_MODEL_DIR)",
    )
    analyze.add_argument("--mirroring", action="store_true", help="test-time mirroring (up to 8x slower)")
    analyze.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cuda, mps or cpu")
    analyze.add_argument(
        "--tile-step", type=float, default=0.5, help="sliding-window step as a fraction of the patch (default 0.5)"
    )
    analyze.add_argument(
        "--label-scheme",
        default="native",
        help="'native' (published knee nnU-Net, default), 'canonical', or a JSON file",
    )
    analyze.add_argument("--out", required=True, help="output folder")
    analyze.add_argument("--no-zip", action="store_true", help="skip the results zip")
    analyze.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    analyze.set_defaults(func=cmd_analyze)

    example = sub.add_parser("example", help="generate a synthetic knee and analyse it")
    example.add_argument("--out", default="out/example", help="output folder (default out/example)")
    example.add_argument("--side", choices=("right", "left"), default="right")
    example.add_argument("-q", "--quiet", action="store_true")
    example.set_defaults(func=cmd_example)

    weights_cmd = sub.add_parser("weights", help="list, download or verify model weights")
    weights_cmd.add_argument("action", choices=("list", "download", "verify"))
    weights_cmd.add_argument("models", nargs="*", help="model names (default: all segmentation models)")
    weights_cmd.add_argument("--model-dir", default=None, help="verify a local copy in the published layout")
    weights_cmd.set_defaults(func=cmd_weights)

    synth = sub.add_parser("synth", help="write a synthetic knee label map (and MR-like image)")
    synth.add_argument("--out", required=True)
    synth.add_argument("--side", choices=("right", "left"), default="right")
    synth.add_argument("--thickness", type=float, default=2.0, help="cartilage thickness in mm")
    synth.add_argument("--image", action="store_true", help="also render an MR-like image")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=cmd_synth)
    doctor = sub.add_parser("doctor", help="check this host: Python, packages, GPU, weights, disk, Caddy")
    doctor.add_argument("--workdir", help="folder the app writes to (default: KNEESCOPE_WORKDIR or the temp dir)")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except KneePipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
