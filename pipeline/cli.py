"""Command line: ``python -m pipeline analyze|example|synth``.

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
    from .analysis import analyze_labels

    if args.labels is None:
        raise KneePipelineError(
            "No --labels given. Segmenting an MRI needs the segmentation engine, which this version does not "
            "include yet; analyse an existing segmentation with --labels SEG --label-scheme native|canonical|FILE."
        )
    result = analyze_labels(
        args.labels, scheme=args.label_scheme, image=args.image, progress=None if args.quiet else _progress_bar()
    )
    files = result.write(args.out, make_zip=not args.no_zip)
    print(_summary(result, files))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description="KneeScope knee MRI analysis")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    analyze = sub.add_parser("analyze", help="analyse a knee segmentation (and its MRI)")
    analyze.add_argument("image", nargs="?", help="the MRI (NIfTI, NRRD, MHA, DICOM folder or zip)")
    analyze.add_argument("--labels", help="existing segmentation (NIfTI, NRRD or MHA label map)")
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

    synth = sub.add_parser("synth", help="write a synthetic knee label map (and MR-like image)")
    synth.add_argument("--out", required=True)
    synth.add_argument("--side", choices=("right", "left"), default="right")
    synth.add_argument("--thickness", type=float, default=2.0, help="cartilage thickness in mm")
    synth.add_argument("--image", action="store_true", help="also render an MR-like image")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=cmd_synth)
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
