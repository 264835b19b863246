"""Does swapping the visits negate the change? compare(B, A) against -compare(A, B), one-way vs two-way registration.

    .venv/bin/python bench/compare_symmetry.py [--spacing 0.6,0.6,1.2 0.5,0.5,0.8 0.36,0.36,0.7]

Per grid and side: a baseline knee and its follow-up (medial tibial -0.4 mm, femoral -0.2 mm; turned 5, -4, 3 degrees
about x, y, z, moved 4, -3, 5 mm and voxelised afresh). Printed for the registration one way (follow-up onto
baseline, as before issue 24) and both ways (the midpoint, the default): the largest regional asymmetry
|change(A, B) + change(B, A)| over the 9 regions (mm), the largest error of change(A, B) from the truth, how far
the registration of (B, A) is from the inverse of (A, B)'s (largest over the bones, mm at the bone's points), and
the seconds of both comparisons.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.engine import analyze_labels
from pipeline.longitudinal import CompareOptions, compare
from pipeline.longitudinal.registration import RegistrationOptions
from pipeline.synthetic import PhantomSpec, make_phantom
from pipeline.synthetic.followup import make_followup

CHANGES = {"medial_tibial": -0.4, "femoral": -0.2}


def measure(spacing: tuple[float, float, float], side: str, both_ways: bool, a, b, truth) -> dict:
    options = CompareOptions(registration=RegistrationOptions(both_ways=both_ways))
    start = time.perf_counter()
    forward, backward = compare(a, b, options=options), compare(b, a, options=options)
    seconds = time.perf_counter() - start
    asymmetry = max(abs(forward.change(r) + backward.change(r)) for r in forward.regions)
    error = max(abs(forward.change(r) - truth[r]) for r in forward.regions)
    inverse = 0.0
    for bone, reg in forward.registrations.items():
        points = forward.followup.bones[bone].points
        back = reg.transform.then(backward.registrations[bone].transform).apply(points)
        inverse = max(inverse, float(np.linalg.norm(back - points, axis=1).max()))
    return {"asymmetry": asymmetry, "error": error, "inverse": inverse, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spacing", nargs="+", default=["0.6,0.6,1.2", "0.5,0.5,0.8", "0.36,0.36,0.7"])
    args = parser.parse_args()
    print("| grid (mm) | side | registration | asymmetry (mm) | error vs truth (mm) | from inverse (mm) | seconds |")
    print("|---|---|---|---|---|---|---|")
    for text in args.spacing:
        spacing = tuple(float(v) for v in text.split(","))
        for side in ("right", "left"):
            spec = PhantomSpec(side=side, spacing=spacing)
            moved = make_followup(
                spec, changes=CHANGES, rotation_deg=(5.0, -4.0, 3.0), translation_mm=(4.0, -3.0, 5.0), resample=True
            )
            a, b = analyze_labels(make_phantom(spec).labels), analyze_labels(moved.phantom.labels)
            for both_ways in (False, True):
                m = measure(spacing, side, both_ways, a, b, moved.changes_mm)
                print(
                    f"| {text} | {side} | {'both ways' if both_ways else 'one way'} | {m['asymmetry']:.4f} | "
                    f"{m['error']:.4f} | {m['inverse']:.2g} | {m['seconds']:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
