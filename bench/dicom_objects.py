"""Time and memory of the DICOM objects (SEG, SR, T2 Parametric Map) against writing labels.nii.gz, same run.

Run from the repository root:  .venv/bin/python bench/dicom_objects.py [--size 384 384 160] [--repeats 3]

- Data: the synthetic knee (``pipeline.synthetic``) voxelised on a clinical sagittal grid (default 384 x 384 x 160
  at 0.36 x 0.36 x 0.7 mm), written as a single-echo MR DICOM series (pydicom), analysed with its labels (no T2).
  Two SEG instances (9 structures; 5 femoral subregions), each a label-map style array: one SEG with the subregions
  overlapping the femoral cartilage needed a (slices, rows, columns, segments) stack, 519 MiB here. With
  ``--mese DIR`` also a multi-echo series with T2 (e.g. the real GE MESE series of platform-notes §13), for the
  Parametric Map.
- Baseline: ``write_volume(labels, labels.nii.gz)``, the label map output every analysis writes.
- Times: best of ``--repeats``; memory: tracemalloc peak of one build-and-save (numpy arrays are traced), as a
  multiple of the label map's bytes, and the process's peak RSS before and after. Ratios only; no assertion.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.engine import analyze_labels  # noqa: E402
from pipeline.io import load_image, write_volume  # noqa: E402
from pipeline.report.dicom_seg import build_segmentations  # noqa: E402
from pipeline.report.dicom_sr import build_measurement_report  # noqa: E402
from pipeline.report.parametric_map import build_t2_parametric_map  # noqa: E402
from pipeline.synthetic import PhantomSpec, make_phantom  # noqa: E402
from pipeline.synthetic.dicom_series import write_mr_series  # noqa: E402


def measure(label: str, work, repeats: int, baseline: tuple[float, float] | None, array_bytes: int):
    best = min(_timed(work) for _ in range(repeats))
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ratio = f"{best / baseline[0]:6.1f}x" if baseline else "   1.0x"
    print(f"  {label:<34} {best:7.3f} s {ratio}   peak {peak / 2**20:7.1f} MiB ({peak / array_bytes:5.1f}x labels)")
    return best, peak


def _max_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def run_case(name: str, result, out: Path, repeats: int) -> None:
    labels = result.labels
    print(f"{name}: {labels.size} voxels, label map {labels.array.nbytes / 2**20:.1f} MiB")
    print(f"  process peak RSS after reading and analysing it: {_max_rss_mib():.0f} MiB")
    baseline = measure(
        "labels.nii.gz (baseline)",
        lambda: write_volume(labels, out / "labels.nii.gz"),
        repeats,
        None,
        labels.array.nbytes,
    )
    segs = build_segmentations(result)
    measure(
        "DICOM-SEGs (2) build + save",
        lambda: [seg.save_as(out / f"seg{n}.dcm") for n, seg in enumerate(build_segmentations(result))],
        repeats,
        baseline,
        labels.array.nbytes,
    )
    results = result.to_dict()
    measure(
        "DICOM SR build + save",
        lambda: build_measurement_report(result, results, segs).save_as(out / "sr.dcm"),
        repeats,
        baseline,
        labels.array.nbytes,
    )
    print(f"  process peak RSS after the DICOM objects: {_max_rss_mib():.0f} MiB")
    if result.t2_map is not None:
        measure(
            "T2 Parametric Map build + save",
            lambda: build_t2_parametric_map(result).save_as(out / "t2map.dcm"),
            repeats,
            baseline,
            labels.array.nbytes,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=3, default=(384, 384, 160), help="grid (i j k)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mese", type=Path, help="a multi-echo series folder (T2 and the Parametric Map)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        spacing = (0.36, 0.36, 0.7)
        spec = PhantomSpec(spacing=spacing)
        from pipeline.synthetic.phantom import make_grid

        grid = make_grid(spec)
        centre = grid.index_to_physical(np.array([[(n - 1) / 2 for n in grid.size]]))[0]
        size = np.array(args.size)
        origin = centre - grid.direction @ (np.array(spacing) * (size - 1) / 2)
        big = grid.__class__(np.zeros(size[::-1], np.uint8), spacing, origin, grid.direction)
        labels = make_phantom(spec, grid=big).labels
        series = write_mr_series(
            out / "series", labels, [labels.array.astype(np.float32) * 100], [5.0], tr_ms=20.0, flip_deg=20.0,
            description="bench", acquisition_type="3D",
        )  # fmt: skip
        image = load_image(series)
        result = analyze_labels(image.with_array(labels.array), image=image, t2=False, case_id="bench")
        run_case("synthetic sagittal series", result, out, args.repeats)
        if args.mese is not None:
            mese = load_image(args.mese)
            centre = mese.index_to_physical(np.array([[(n - 1) / 2 for n in mese.size]]))[0]
            knee = make_phantom(PhantomSpec(centre_lps=tuple(centre)), grid=mese).labels
            run_case(f"{args.mese.name} (T2)", analyze_labels(knee, image=mese, case_id="mese"), out, args.repeats)


if __name__ == "__main__":
    main()
