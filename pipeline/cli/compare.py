"""``python -m pipeline compare BASELINE FOLLOWUP --out OUT``: cartilage change between two visits of one knee."""

from __future__ import annotations

import argparse
import functools
import math
from pathlib import Path

from .analyze import add_label_scheme, add_model_options, build_engine
from .common import progress_bar


def add_parser(sub) -> None:
    compare = sub.add_parser(
        "compare",
        help="cartilage change between two visits of the same knee (analysis folders, results zips, label maps, MRIs)",
    )
    for role in ("baseline", "followup"):
        compare.add_argument(
            role, help=f"the {role} visit: an analysis output folder or results zip, a label map, or an MRI"
        )
    compare.add_argument("--out", required=True, help="output folder")
    compare.add_argument(
        "--threshold-mm",
        type=float,
        default=0.2,
        help="a vertex thinned (thickened) when its change is below minus (above) this many mm (default 0.2)",
    )
    compare.add_argument(
        "--colour-range-mm", type=float, default=None, help="symmetric colour range of the change map (default: auto)"
    )
    add_label_scheme(compare)
    add_model_options(compare)
    compare.add_argument("--no-zip", action="store_true", help="skip the results zip")
    compare.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    compare.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..longitudinal import CompareOptions, compare
    from ..request import AnalysisRequest

    options = CompareOptions(threshold_mm=args.threshold_mm, colour_range_mm=args.colour_range_mm)

    @functools.cache
    def engine(segment: bool):  # loaded only if an input must be analysed (a model only for an MRI)
        return build_engine(args, segment=segment)

    change = compare(
        args.baseline,
        args.followup,
        engine=engine,
        request=AnalysisRequest(label_scheme=args.label_scheme),
        options=options,
        progress=None if args.quiet else progress_bar(),
    )
    files = change.write(args.out, make_zip=not args.no_zip)
    print(change_summary(change, files))
    return 0


def change_summary(change, files: dict) -> str:
    base, fu = change.baseline, change.followup
    lines = [f"{fu.case_id} vs {base.case_id}: {base.laterality.side} knee, follow-up minus baseline"]
    for bone, reg in change.registrations.items():
        lines.append(
            f"  {bone:8s} moved {reg.transform.angle_deg:5.2f} deg, centre {math.hypot(*reg.centre_shift_mm):6.2f} mm; "
            f"shapes agree within {reg.residual_rms_mm:.3f} mm RMS"
        )
    for region, result in change.regions.items():
        stats = result.thickness_change_mm
        if stats is None:
            lines.append(f"  {region:32s} not compared")
            continue
        pct = "" if result.percent_change is None else f" ({result.percent_change:+5.1f} %)"
        lines.append(
            f"  {region:32s} {stats.mean:+6.3f} mm{pct}, median {stats.median:+6.3f}, "
            f"thinned {result.thinned_area_mm2:6.1f} mm2, thickened {result.thickened_area_mm2:6.1f} mm2"
        )
    lines += [f"  QC: {warning}" for warning in change.warnings]
    lines.append(f"Results written to {Path(files['change.json']).parent.resolve()}")
    if "zip" in files:
        lines.append(f"  all files: {files['zip']}")
    return "\n".join(lines)
