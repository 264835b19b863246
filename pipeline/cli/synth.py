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
    synth.add_argument(
        "--spacing", metavar="MM", help="voxel size along the grid's i, j, k axes: one number or I,J,K (0.36,0.36,0.7)"
    )
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
    add_followup_options(synth)
    synth.set_defaults(func=run_synth)


def add_followup_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "follow-up visit", "write the follow-up of the knee the other options describe (truth in change_truth.json)"
    )
    group.add_argument(
        "--change",
        action="append",
        default=[],
        metavar="REGION=MM",
        help="thickness change of femoral, medial_tibial, lateral_tibial or patellar (repeatable)",
    )
    group.add_argument(
        "--rotate", metavar="DEG", help="rotation about each patient axis (x, y, z: L, P, S), or DX,DY,DZ degrees"
    )
    group.add_argument("--translate", metavar="MM", help="shift along each patient axis, or X,Y,Z mm")
    group.add_argument(
        "--resample", action="store_true", help="voxelise the moved knee on a fresh grid (default: the same voxels)"
    )


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
    if args.spacing:
        spec = _with_spacing(spec, args.spacing)
    out = Path(args.out)
    followup = args.change or args.rotate or args.translate or args.resample
    phantom = _write_followup(spec, args, out) if followup else make_phantom(spec)
    write_volume(phantom.labels, out / "labels.nrrd")
    if args.image:
        write_volume(render_mr(phantom.labels, seed=args.seed), out / "image.nrrd")
    visit = "follow-up of a synthetic" if followup else "synthetic"
    written = f"Wrote {visit} {args.side} knee (cartilage {args.thickness} mm) to {out.resolve()}"
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


def _write_followup(spec, args: argparse.Namespace, out: Path):
    """The follow-up phantom, and change_truth.json with the true changes and motion."""
    import json

    from ..errors import InvalidInputError
    from ..synthetic.followup import make_followup

    try:
        changes = dict(_change(item) for item in args.change)
        followup = make_followup(
            spec,
            changes=changes,
            rotation_deg=_triple(args.rotate, "--rotate"),
            translation_mm=_triple(args.translate, "--translate"),
            resample=args.resample,
        )
    except ValueError as exc:
        raise InvalidInputError(f"synth: {exc}.") from exc
    truth = {
        "thickness_change_mm": followup.changes_mm,
        "motion_lps_mm": followup.motion.round(9).tolist(),
        "motion_note": "4x4 transform taking the baseline knee to where it lies at follow-up (LPS mm)",
        "resampled": followup.resampled,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "change_truth.json").write_text(json.dumps(truth, indent=2))
    return followup.phantom


def _with_spacing(spec, text: str):
    import dataclasses

    from ..errors import InvalidInputError

    try:
        spacing = _triple(text, "--spacing")
    except ValueError as exc:
        raise InvalidInputError(f"synth: {exc}.") from exc
    if min(spacing) <= 0:
        raise InvalidInputError(f"synth: --spacing must be positive, got {text!r}.")
    return dataclasses.replace(spec, spacing=spacing)


def _change(item: str) -> tuple[str, float]:
    region, _, value = item.partition("=")
    try:
        return region.strip(), float(value)
    except ValueError:
        raise ValueError(f"--change takes REGION=MM (e.g. medial_tibial=-0.5), got {item!r}") from None


def _triple(text: str | None, option: str) -> tuple[float, float, float]:
    """'5' -> (5, 5, 5); '5,0,-3' -> (5, 0, -3); None -> zeros."""
    if not text:
        return (0.0, 0.0, 0.0)
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} takes one number or three separated by commas, got {text!r}") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise ValueError(f"{option} takes one number or three separated by commas, got {text!r}")
    return (values[0], values[1], values[2])
