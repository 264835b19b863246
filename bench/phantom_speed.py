"""Voxelising the synthetic knee: each group of structures evaluated only inside its box (make_phantom as shipped)
against every group evaluated on every voxel (the reference the tests compare with), in the same run.

    .venv/bin/python bench/phantom_speed.py [--repeat N]

Prints the best of N seconds per phantom for a few grids, the ratio, and whether the label arrays are identical.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.synthetic import phantom as P

GRIDS = {
    "default sagittal 0.36x0.36x0.7": P.PhantomSpec(),
    "left axial 0.5x0.5x0.8": P.PhantomSpec(side="left", orientation="axial", spacing=(0.5, 0.5, 0.8)),
    "cohort 0.6x0.6x1.2": P.PhantomSpec(spacing=(0.6, 0.6, 1.2)),
}


def best_of(repeat: int, spec: P.PhantomSpec, *, boxed: bool) -> tuple[float, np.ndarray]:
    shipped = P._label_knee_frame
    P._label_knee_frame = functools.partial(shipped, boxed=boxed)
    try:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            array = P.make_phantom(spec).labels.array
            times.append(time.perf_counter() - start)
    finally:
        P._label_knee_frame = shipped
    return min(times), array


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    P.make_phantom(GRIDS["cohort 0.6x0.6x1.2"])  # imports and caches warmed
    print(f"{'grid':32s} {'voxels':>10s} {'everywhere s':>13s} {'boxed s':>8s} {'ratio':>6s} identical")
    for name, spec in GRIDS.items():
        reference, expected = best_of(args.repeat, spec, boxed=False)
        boxed, array = best_of(args.repeat, spec, boxed=True)
        print(
            f"{name:32s} {array.size:10d} {reference:13.2f} {boxed:8.2f} {reference / boxed:5.1f}x "
            f"{np.array_equal(array, expected)}"
        )


if __name__ == "__main__":
    main()
