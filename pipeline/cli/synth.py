"""``python -m pipeline synth`` and ``example``: synthetic knees of known truth, written or analysed."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import progress_bar, summary


def add_parsers(sub) -> None:
    example = sub.add_parser("example", help="generate a synthetic knee and analyse it")
    example.add_argument("--out", default="out/example", help="output folder (default out/example)")
    example.add_argument("--side", choices=("right", "left"), default="right", help="which knee (default right)")
    example.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    example.set_defaults(func=run_example)

    synth = sub.add_parser(
        "synth", help="write a synthetic knee label map (and an MR-like image, a qDESS or a MESE T2 series)"
    )
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--side", choices=("right", "left"), default="right", help="which knee (default right)")
    synth.add_argument("--thickness", type=float, default=2.0, help="cartilage thickness in mm (default 2.0)")
    synth.add_argument("--image", action="store_true", help="also render an MR-like image (image.nrrd)")
    synth.add_argument(
        "--qdess", action="store_true", help="also write a two-echo GE qDESS DICOM series (qdess/) and t2_truth.json"
    )
    synth.add_argument(
        "--mese",
        action="store_true",
        help="also write an 8-echo multi-echo spin-echo T2 DICOM series (mese/), its labels (mese_labels.nrrd, on the "
        "series' oblique 2-D grid) and mese_t2_truth.json",
    )
    synth.add_argument("--seed", type=int, default=0, help="noise seed of the rendered images (default 0)")
    synth.set_defaults(func=run_synth)


def run_example(args: argparse.Namespace) -> int:
    from ..engine import analyze_labels
    from ..io import write_volume
    from ..synthetic import make_phantom, render_mr

    phantom = make_phantom(side=args.side)
    out = Path(args.out)
    image = render_mr(phantom.labels)
    name = f"synthetic_{args.side}_knee"
    image_path = write_volume(image, out / "input" / f"{name}.nrrd")
    labels_path = write_volume(phantom.labels, out / "input" / f"{name}_labels.nrrd")
    result = analyze_labels(
        labels_path,
        scheme="canonical",
        image=image_path,
        case_id=name,
        progress=None if args.quiet else progress_bar(),
    )
    files = result.write(out)
    print(summary(result, files))
    print(f"Synthetic example (not real MRI); truth: {phantom.truth_thickness_mm} mm")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from ..io import write_volume
    from ..synthetic import PhantomSpec, make_phantom, render_mr

    spec = PhantomSpec(side=args.side, femoral_mm=args.thickness, tibial_mm=args.thickness, patellar_mm=args.thickness)
    phantom = make_phantom(spec)
    out = Path(args.out)
    write_volume(phantom.labels, out / "labels.nrrd")
    if args.image:
        write_volume(render_mr(phantom.labels, seed=args.seed), out / "image.nrrd")
    written = f"Wrote synthetic {args.side} knee (cartilage {args.thickness} mm) to {out.resolve()}"
    if args.qdess:
        from ..synthetic.qdess import write_qdess_example

        example = write_qdess_example(out, spec=spec, seed=args.seed)
        written += f"\n  qDESS series: {example.series_dir}\n  true T2 per region: {example.truth_path}"
    if args.mese:
        from ..synthetic.mese import mese_spec, write_mese_example

        mese = write_mese_example(out, spec=mese_spec(side=args.side), seed=args.seed)
        labels = write_volume(mese.phantom.labels, out / "mese_labels.nrrd")
        written += f"\n  MESE series: {mese.series_dir} (labels {labels.name})\n  true T2 per region: {mese.truth_path}"
    print(written)
    return 0
