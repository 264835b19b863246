"""What measuring the network's confidence costs: time and peak memory of a segmentation with and without it.

Run from the repository root:  .venv/bin/python bench/confidence_overhead.py [--repeat 5] [--published-shape K J I]

- Demo model (bundled, trained): the built-in example knee (0.36 x 0.36 x 0.7 mm, 249 x 174 x 127), through
  ``Segmenter.predict`` with the backend ``auto`` picks, without and with test-time mirroring (mirroring adds the
  per-tile votes of the mirrored copies).
- The published architecture with random weights (nnU-Net's ResEnc-M planner on DESS knees, as bench/gpu_check.py
  builds it), through OpenVINO (bf16 where the CPU has it, else fp32: the backend ``auto`` picks on a CPU), on a
  knee-sized input (default the full 160 x 384 x 384 DESS grid, 36 tiles).
- Each row alternates the two settings (``measure_confidence`` off: the baseline, on) ``--repeat`` times in the same
  process, after one warm-up of each: wall time = the best (least disturbed) run of ``predict``; CPU time = the
  median of the process's CPU seconds (all its threads; far less sensitive to other users' load than wall time);
  peak memory = the most the process's resident set rose above its level before the call (Linux VmHWM, reset
  before each call through /proc/self/clear_refs), median over the runs. Printed: each, their ratios (acceptance:
  time +5 %, memory +10 % at most), and the confidence statistics' own seconds (timed inside, per case).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gpu_check import SHAPE_KJI, derive_plans, knee_sized_image, write_model_folder  # noqa: E402


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status (Linux only)")


def measured_call(fn) -> tuple[object, float, float, float]:
    """(result, wall seconds, CPU seconds of the process (all its threads), peak MiB above the resident set before
    the call)."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    before = _status_kib("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return result, seconds, cpu, (_status_kib("VmHWM") - before) / 1024


def compare(segmenter, image, *, repeat: int, mirroring: bool) -> dict:
    """Alternate confidence off / on; best wall time, median CPU time and peak memory, and their ratios."""
    runs: dict[bool, dict[str, list[float]]] = {m: {"s": [], "cpu": [], "mib": [], "conf_s": []} for m in (False, True)}
    for attempt in range(repeat + 1):
        for measure in (False, True):
            segmenter.measure_confidence = measure
            result, seconds, cpu, mib = measured_call(lambda: segmenter.predict(image, mirroring=mirroring))
            if attempt == 0:
                continue  # warm-up: allocator pools, graph caches
            runs[measure]["s"].append(seconds)
            runs[measure]["cpu"].append(cpu)
            runs[measure]["mib"].append(mib)
            if result.confidence is not None:
                runs[measure]["conf_s"].append(result.confidence.seconds)
        print(f"    round {attempt}: off {runs[False]['s'][-1:] or '-'} s, on {runs[True]['s'][-1:] or '-'} s "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    segmenter.measure_confidence = True
    off, on = runs[False], runs[True]
    row = {
        "mirroring": mirroring,
        "baseline_s": min(off["s"]),  # the least disturbed run of each (a shared machine)
        "confidence_s": min(on["s"]),
        "baseline_cpu_s": statistics.median(off["cpu"]),
        "confidence_cpu_s": statistics.median(on["cpu"]),
        "baseline_peak_mib": statistics.median(off["mib"]),
        "confidence_peak_mib": statistics.median(on["mib"]),
        "statistics_s": statistics.median(on["conf_s"]),
        "all": {"off": off, "on": on},
    }
    row["time_ratio"] = row["confidence_s"] / row["baseline_s"]
    row["cpu_ratio"] = row["confidence_cpu_s"] / row["baseline_cpu_s"]
    row["memory_ratio"] = row["confidence_peak_mib"] / row["baseline_peak_mib"]
    row["statistics_share"] = row["statistics_s"] / row["baseline_s"]
    return row


def demo_rows(repeat: int) -> list[dict]:
    from pipeline import weights
    from pipeline.config import InferenceOptions
    from pipeline.segmentation import Segmenter
    from pipeline.synthetic import make_phantom, render_mr

    segmenter = Segmenter.from_model(weights.resolve_model("demo"), options=InferenceOptions(device="cpu"),
                                     require_knee=False)  # fmt: skip
    image = render_mr(make_phantom(side="right").labels)
    backend = segmenter._stages[0].backend
    rows = []
    for mirroring in (False, True):
        print(f"  demo model, mirroring {'on' if mirroring else 'off'}:", flush=True)
        row = compare(segmenter, image, repeat=repeat, mirroring=mirroring)
        name = f"{backend['backend']} {backend['precision']}"
        rows.append({"model": "demo", "backend": name, "input": list(image.array.shape), **row})
    return rows


def published_rows(repeat: int, shape: tuple[int, int, int]) -> list[dict]:
    import torch

    from pipeline.config import InferenceOptions
    from pipeline.segmentation import Segmenter
    from pipeline.segmentation.backends import has_native_bf16

    with tempfile.TemporaryDirectory(prefix="kneescope-confidence-bench-") as tmp:
        tmp_path = Path(tmp)
        os.environ["KNEESCOPE_EXPORT_DIR"] = str(tmp_path / "export")
        plans, dataset_json = derive_plans(tmp_path)
        torch.manual_seed(0)
        folder, n_params = write_model_folder(tmp_path / "model", plans, dataset_json)
        precision = "bf16" if has_native_bf16() else "fp32"
        options = InferenceOptions(device="cpu", backend="openvino", precision=precision)
        segmenter = Segmenter.from_folders([folder], fold=0, options=options, require_knee=False)
        image = knee_sized_image(shape)
        print(f"  published architecture (ResEnc-M, {n_params / 1e6:.1f} M parameters, random weights), openvino "
              f"{precision}, input {shape}:", flush=True)  # fmt: skip
        row = compare(segmenter, image, repeat=repeat, mirroring=False)
    return [{"model": "published architecture, random weights", "backend": f"openvino {precision}",
             "input": list(shape), **row}]  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = [
        "| model | backend | mirroring | wall s without | with | ratio | CPU s without | with | ratio | statistics s "
        "| statistics / wall | peak MiB without | with | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['backend']} | {'on' if r['mirroring'] else 'off'} | {r['baseline_s']:.2f} | "
            f"{r['confidence_s']:.2f} | {r['time_ratio']:.3f} | {r['baseline_cpu_s']:.2f} | "
            f"{r['confidence_cpu_s']:.2f} | {r['cpu_ratio']:.3f} | {r['statistics_s']:.3f} | "
            f"{r['statistics_share']:.2%} | {r['baseline_peak_mib']:.0f} | {r['confidence_peak_mib']:.0f} | "
            f"{r['memory_ratio']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="measured runs of each setting (after one warm-up)")
    parser.add_argument("--published-repeat", type=int, default=2, help="the same for the published architecture")
    parser.add_argument("--published-shape", type=int, nargs=3, default=list(SHAPE_KJI), metavar=("K", "J", "I"))
    parser.add_argument("--skip-published", action="store_true")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import torch

    started, load = time.perf_counter(), os.getloadavg()[0]
    print(f"{torch.get_num_threads()} threads, load average {load:.1f}", flush=True)
    rows = [] if args.skip_demo else demo_rows(args.repeat)
    if not args.skip_published:
        rows += published_rows(args.published_repeat, tuple(args.published_shape))
    print("\n" + table(rows))
    print(f"\nwall {time.perf_counter() - started:.0f} s; load average {load:.1f} -> {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
