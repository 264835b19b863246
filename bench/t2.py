"""Time the qDESS T2 step (map + superficial/deep split + regional statistics) on a clinical-size volume, on CPU.

The synthetic knee (pipeline.synthetic, 0.36 x 0.36 x 0.7 mm voxels as a clinical sagittal qDESS) is placed in a
384 x 384 x 160 grid; both echoes follow the qDESS model with a known T2 per region and Rician noise (SNR 40).
Prints a small table (best and median of ``--repeats`` runs); no assertion on time.

    .venv/bin/python bench/t2.py [--repeats 3] [--size 384 384 160] [--dicom]

``--dicom`` also writes the series as 2 x 160 DICOM files and times ``load_qdess`` on them.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from pipeline import labels as L  # noqa: E402
from pipeline import t2  # noqa: E402
from pipeline.config import AnalysisConfig  # noqa: E402
from pipeline.morphometry import anatomy  # noqa: E402
from pipeline.synthetic import PhantomSpec, make_phantom  # noqa: E402
from pipeline.t2 import depth  # noqa: E402
from pipeline.volume import Volume  # noqa: E402

REGION_T2_MS = {11: 30.0, 12: 33.0, 13: 36.0, 14: 39.0, 15: 42.0, 5: 25.0, 6: 28.0, 7: 45.0}
TISSUE = {0: (300.0, 250.0), 1: (800.0, 60.0), 2: (800.0, 60.0), 3: (800.0, 60.0), 8: (250.0, 12.0), 9: (250.0, 12.0)}
CARTILAGE_S1 = 2000.0
TR_MS, TE_MS, FLIP_DEG, GL_AREA, TG_US = 20.0, 5.8, 20.0, 3131.662354, 2472.0


def embedded_knee(size_ijk: tuple[int, int, int]) -> Volume:
    """The synthetic right knee at clinical voxel size, centred in a grid of ``size_ijk`` voxels."""
    labels = make_phantom(PhantomSpec(spacing=(0.36, 0.36, 0.7))).labels
    shape = tuple(reversed(size_ijk))
    if any(a < b for a, b in zip(shape, labels.array.shape, strict=True)):
        raise SystemExit(f"--size {size_ijk} is smaller than the phantom {labels.size}")
    offset = (np.array(shape) - labels.array.shape) // 2  # (k, j, i)
    array = np.zeros(shape, dtype=np.uint8)
    window = tuple(slice(o, o + n) for o, n in zip(offset, labels.array.shape, strict=True))
    array[window] = labels.array
    origin = np.asarray(labels.origin) - labels.direction @ (np.asarray(labels.spacing) * offset[::-1])
    return Volume(array, labels.spacing, origin, labels.direction, meta={"synthetic": True})


def echoes(labels: Volume, region_map: np.ndarray, *, snr: float = 40.0, seed: int = 0) -> tuple[Volume, Volume]:
    """Echo-1 and echo-2 magnitudes (float32) with a known T2 per region and Rician noise."""
    s1_lut, t2_lut = np.full(256, CARTILAGE_S1, np.float32), np.full(256, 35.0, np.float32)
    for value, (s1, t2_ms) in TISSUE.items():
        s1_lut[value], t2_lut[value] = s1, t2_ms
    s1 = s1_lut[labels.array]
    t2_truth = t2_lut[labels.array]
    for region, t2_ms in REGION_T2_MS.items():
        t2_truth[region_map == region] = t2_ms
    ratio = t2.expected_ratio(t2_truth, tr_ms=TR_MS, te_ms=TE_MS, flip_deg=FLIP_DEG, gl_area=GL_AREA, tg_us=TG_US)
    s2 = (s1 * ratio).astype(np.float32)
    rng = np.random.default_rng(seed)
    sigma = np.float32(CARTILAGE_S1 / snr)

    def noisy(s: np.ndarray) -> np.ndarray:
        real = s + rng.standard_normal(s.shape, dtype=np.float32) * sigma
        return np.hypot(real, rng.standard_normal(s.shape, dtype=np.float32) * sigma)

    return labels.with_array(noisy(s1)), labels.with_array(noisy(s2))


def timed(fn, repeats: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, nargs=3, default=(384, 384, 160), metavar=("NI", "NJ", "NK"))
    parser.add_argument("--dicom", action="store_true", help="also time load_qdess on a written DICOM series")
    args = parser.parse_args()

    setup = time.perf_counter()
    labels = embedded_knee(tuple(args.size))
    femoral, _ = anatomy.femoral_subregions(labels, anatomy.detect_laterality(labels), AnalysisConfig())
    region_map = anatomy.region_map(labels, femoral)
    echo1, echo2 = echoes(labels, region_map)
    series = t2.QDessSeries.from_volumes(
        echo1, echo2, tr_ms=TR_MS, te_ms=TE_MS, flip_deg=FLIP_DEG, gl_area=GL_AREA, tg_us=TG_US
    )
    setup = time.perf_counter() - setup

    params = t2.T2Params()
    rows = []
    t_map, t2map = timed(lambda: t2.compute_t2_map(series, params), args.repeats)
    rows.append(("T2 map (compute_t2_map)", t_map))
    t_depth, split = timed(lambda: depth.split_depth(labels, region_map), args.repeats)
    rows.append(("superficial/deep split (split_depth)", t_depth))
    t_stats, _ = timed(lambda: t2.t2_statistics(t2map, region_map, split.labels, params), args.repeats)
    rows.append(("regional statistics (t2_statistics)", t_stats))
    t_all, result = timed(lambda: t2.run_t2(series, labels, region_map, params), args.repeats)
    rows.append(("whole step (run_t2)", t_all))
    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    t2.run_t2(series, labels, region_map, params)
    step_peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    if args.dicom:
        rows.append((f"load_qdess of 2 x {labels.size[2]} DICOM files", time_dicom_load(series, labels)))

    n_cart = int((region_map > 0).sum())
    print(
        f"qDESS T2 step on CPU: grid {labels.size} (i, j, k), {labels.array.size / 1e6:.1f} M voxels, "
        f"{n_cart:,} cartilage voxels, spacing {labels.spacing} mm; setup (not timed) {setup:.1f} s"
    )
    print(f"{'stage':<40} {'best s':>8} {'median s':>9}")
    for name, times in rows:
        print(f"{name:<40} {min(times):>8.3f} {statistics.median(times):>9.3f}")
    print(
        f"run_t2 peak allocation {step_peak_mib:.0f} MiB (beyond its inputs); process peak resident memory "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (includes building the phantom)"
    )
    print("regional mean T2 vs truth (ms):")
    for name, ids in L.CARTILAGE_REGIONS.items():
        truth = float(np.mean([REGION_T2_MS[i] for i in ids])) if name != "femoral" else None
        stats = result.regions[name]
        truth_text = f"{truth:.1f}" if truth is not None else "  - "
        print(
            f"  {name:<32} {stats['mean']:7.2f}  truth {truth_text}  deep {stats['deep']['mean']:6.2f}  "
            f"superficial {stats['superficial']['mean']:6.2f}  n {stats['n_voxels']}"
        )


def time_dicom_load(series: t2.QDessSeries, labels: Volume) -> list[float]:
    """Write both echoes as single-frame DICOM (uint16) and time load_qdess once."""
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.qdess import write_series

    with tempfile.TemporaryDirectory(prefix="bench-t2-") as tmp:
        scale = 20.0  # keep precision in 16-bit pixels
        write_series(
            Path(tmp),
            labels,
            [series.echo1.array * scale, series.echo2.array * scale],
            [TE_MS, 2 * TR_MS - TE_MS],
            tr_ms=TR_MS,
            flip_deg=FLIP_DEG,
            description="Sag 3D qDESS bench",
            spoiler_tags=(f"{GL_AREA:.6f}", f"{TG_US:.6f}"),
        )
        start = time.perf_counter()
        t2.load_qdess(Path(tmp))
        return [time.perf_counter() - start]


if __name__ == "__main__":
    main()
