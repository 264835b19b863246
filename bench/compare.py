"""Two-visit comparison: time of ``compare`` on two analysed knees, and its method error per region.

    .venv/bin/python bench/compare.py [--spacing 0.36,0.36,0.7] [--repeats 3]

Pairs are synthetic (pipeline.synthetic.followup): a baseline knee and its follow-up, rotated by several degrees about
each axis and shifted by about a centimetre, either stored exactly (the baseline's voxels, the motion in the grid's
direction and origin) or voxelised afresh on the scanner's grid ("resampled"). Printed per region: the recovered
change minus the true change (mean / median, mm). The reference row "independent" is what two separate analyses give
(follow-up regional mean minus baseline regional mean, no registration): the error a comparison must not exceed.
Timing: ``compare`` on two KneeAnalysis objects (registration, both visits measured along the same rays), as a ratio
to one analysis of the same knee measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.engine import analyze_labels
from pipeline.longitudinal import CompareOptions, compare
from pipeline.synthetic import PhantomSpec, make_phantom
from pipeline.synthetic.followup import make_followup

SHORT = {
    "femoral": "F",
    "femoral_trochlea": "F.troch",
    "femoral_medial_weight_bearing": "F.MWB",
    "femoral_lateral_weight_bearing": "F.LWB",
    "femoral_medial_posterior": "F.MP",
    "femoral_lateral_posterior": "F.LP",
    "medial_tibial": "MT",
    "lateral_tibial": "LT",
    "patellar": "P",
}
MOTION = {"right": ((6.0, -4.0, 5.0), (7.0, -5.0, 6.0)), "left": ((-5.0, 6.0, -4.0), (-6.0, 8.0, 4.0))}
CHANGES = {"medial_tibial": -0.5, "femoral": -0.3, "patellar": 0.3}


def timed(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, statistics.median(times)


def row(name: str, errors: dict[str, tuple[float, float | None]]) -> str:
    cells = [f"{m:+.3f}" + ("" if d is None else f" / {d:+.3f}") for m, d in errors.values()]
    worst = max(max(abs(m), abs(d or 0.0)) for m, d in errors.values())
    return f"| {name} | " + " | ".join(cells) + f" | **{worst:.3f}** |"


def change_errors(change, truth) -> dict[str, tuple[float, float | None]]:
    out = {}
    for region, result in change.regions.items():
        stats = result.thickness_change_mm
        out[region] = (stats.mean - truth[region], stats.median - truth[region])
    return out


def independent_errors(base, follow, truth) -> dict[str, tuple[float, float | None]]:
    return {r: (follow.thickness(r) - base.thickness(r) - truth[r], None) for r in truth}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spacing", default="0.36,0.36,0.7", help="voxel size of the knees (mm, i,j,k)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    args = parser.parse_args()
    spacing = tuple(float(v) for v in args.spacing.split(","))
    header = "| pair | " + " | ".join(SHORT.values()) + " | worst |"
    print(f"spacing {spacing} mm; recovered minus true change, mean / median (mm)\n")
    print(header)
    print("|" + "---|" * (len(SHORT) + 2))
    timings = []
    for side in ("right", "left"):
        spec = PhantomSpec(side=side, spacing=spacing)
        labels = make_phantom(spec).labels
        base, t_analysis = timed(lambda labels=labels: analyze_labels(labels), args.repeats)
        rotation, translation = MOTION[side]
        for changes, resample in (({}, False), ({}, True), (CHANGES, False), (CHANGES, True)):
            visit = make_followup(
                spec, changes=changes, rotation_deg=rotation, translation_mm=translation, resample=resample
            )
            follow = analyze_labels(visit.phantom.labels)
            change, t_compare = timed(lambda f=follow, b=base: compare(b, f), args.repeats)
            name = f"{side}, {'change' if changes else 'moved copy'}, {'resampled' if resample else 'exact'}"
            print(row(name, change_errors(change, visit.changes_mm)))
            if resample:
                print(row(f"{name}: independent", independent_errors(base, follow, visit.changes_mm)))
            timings.append((name, t_compare, t_analysis))
    ablation(spacing)
    print("\n| pair | compare (s) | one analysis (s) | ratio |\n|---|---|---|---|")
    for name, t_compare, t_analysis in timings:
        print(f"| {name} | {t_compare:.2f} | {t_analysis:.2f} | {t_compare / t_analysis:.2f} |")
    return 0


def ablation(spacing) -> None:
    """The rays' two refinements (smoothed directions, shifted origins) on and off, on resampled pairs."""
    print("\nRays (right knee, change, resampled): worst regional error (mm), mean / median over the 9 regions")
    print("| smoothing (mm) | jitter | worst | mean abs error |\n|---|---|---|---|")
    spec = PhantomSpec(side="right", spacing=spacing)
    base = analyze_labels(make_phantom(spec).labels)
    rotation, translation = MOTION["right"]
    visit = make_followup(spec, changes=CHANGES, rotation_deg=rotation, translation_mm=translation, resample=True)
    follow = analyze_labels(visit.phantom.labels)
    for smoothing, jitter in ((0.0, 0.0), (1.5, 0.0), (0.0, None), (1.5, None)):
        options = CompareOptions(ray_smoothing_mm=smoothing, ray_jitter_mm=jitter)
        errors = change_errors(compare(base, follow, options=options), visit.changes_mm)
        values = [abs(v) for pair in errors.values() for v in pair if v is not None]
        label = "off" if jitter == 0.0 else "1 voxel"
        print(f"| {smoothing:g} | {label} | {max(values):.3f} | {statistics.mean(values):.3f} |")


if __name__ == "__main__":
    raise SystemExit(main())
