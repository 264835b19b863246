"""Segmentation on the CPU: every inference backend on the published knee architecture, in one process and one run.

The published network (nnU-Net ResEnc-M, 3d_fullres plans derived by nnU-Net's own planner for 384 x 384 x 160
DESS knees, 101.9 M parameters, patch 80 x 192 x 160; ``bench/gpu_check.py`` builds it) with random weights
segments the same knee-sized input through each backend of ``pipeline.segmentation.backends``: nnU-Net's
preprocessing, sliding window and resampling, only the network call differs. Per backend:

* seconds per case (best of ``--repeat``), sliding-window tiles, peak RSS of the process during the case;
* agreement with PyTorch eager fp32 on the same input: max |softmax difference| of the network's output on the
  first tile (the case-level probabilities pass through nnU-Net's fp16 accumulation buffer, which alone moves them
  by up to ~0.2 with random weights' large logits; recorded as ``case_max_softmax_diff``) and the fraction of the
  case's voxels whose argmax label agrees (random weights leave near-ties, so reduced precision is judged on the
  demo model instead);
* demo-model Dice: the bundled demo model (trained) segments a synthetic knee through the same backend; the minimum
  Dice over the structures against eager fp32 (acceptance: >= 0.995).

A backend "agrees" when its demo Dice is >= 0.995 and, for fp32, its argmax agreement is >= 99.9 %. The best
backend is the fastest that agrees; ``speedup`` = eager fp32 seconds / best seconds, measured in the same run.

``--quick``: one tile-sized input (one sliding-window tile), under 3 minutes on 2 cores. Without it: the full
384 x 384 x 160 knee (36 tiles; eager fp32 alone takes 10-15 minutes on 2 shared cores). ``--levers`` adds the
PyTorch levers that are off by default (channels-last 3-D, ``torch.compile``; compiling takes 1-2 minutes).
``--settings`` instead measures the sliding-window settings (tile step, Gaussian weighting, skipping tiles outside
the knee) with the demo model on a synthetic knee in a 384 x 384 x 160 field of view, against the defaults.

    .venv/bin/python bench/cpu_inference.py --quick --json out.json
    .venv/bin/python bench/cpu_inference.py --repeat 1 --json bench/data/cpu_inference_full.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gpu_check import SHAPE_KJI, agreement, derive_plans, knee_sized_image, write_model_folder  # noqa: E402

MIN_DEMO_DICE = 0.995
MIN_ARGMAX_FP32 = 0.999


@dataclass(frozen=True)
class Variant:
    """One row of the table: a backend, its precision and (PyTorch only) levers."""

    backend: str
    precision: str
    channels_last: bool = False
    compile: bool = False

    @property
    def name(self) -> str:
        levers = "".join([" channels-last" if self.channels_last else "", " compile" if self.compile else ""])
        return f"{self.backend} {self.precision}{levers}"


BASELINE = Variant("torch", "fp32")
VARIANTS = [
    BASELINE,
    Variant("torch", "bf16"),
    Variant("onnx", "fp32"),
    Variant("openvino", "fp32"),
    Variant("openvino", "bf16"),
]
LEVERS = [Variant("torch", "fp32", channels_last=True), Variant("torch", "fp32", compile=True)]


class PeakRss:
    """Peak resident memory of this process while the block runs (sampled every 20 ms from /proc)."""

    def __enter__(self):
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def load_segmenter(folder_or_resolved, *, demo: bool):
    """One Segmenter (PyTorch eager fp32); every variant then only swaps the runner of its predictor."""
    from pipeline import segmentation as segment
    from pipeline.config import InferenceOptions

    options = InferenceOptions(device="cpu", backend="torch", precision="fp32")
    if demo:
        return segment.Segmenter.from_model(folder_or_resolved, options=options, require_knee=False)
    return segment.Segmenter.from_folders([folder_or_resolved], fold=0, options=options, require_knee=False)


def use_variant(segmenter, variant: Variant) -> dict:
    """Put ``variant``'s runner into the segmenter's predictor (raises if it cannot run here); its description."""
    import torch

    from pipeline.segmentation.backends import NetworkSpec, TorchRunner, make_runner
    from pipeline.weights import sha256_file

    stage = segmenter._stages[0]
    predictor = stage.predictor
    predictor.network.to(memory_format=torch.contiguous_format)  # undo a previous channels-last variant
    if variant.channels_last or variant.compile:
        runner = TorchRunner(predictor.network, precision=variant.precision,
                             channels_last=variant.channels_last, compile=variant.compile)  # fmt: skip
    else:
        shape = (1, 1, *predictor.configuration_manager.patch_size)
        spec = NetworkSpec(predictor.network, stage.configuration, stage.checkpoint,
                           sha256_file(stage.checkpoint), shape, segmenter.device)  # fmt: skip
        runner = make_runner(spec, variant.backend, variant.precision)
    predictor.runner = FirstOutput(runner)
    return {**runner.describe(), **({"export": runner.export} if getattr(runner, "export", None) else {})}


class FirstOutput:
    """A runner that keeps its first output (the first tile's logits: compared without nnU-Net's fp16 sums)."""

    def __init__(self, runner):
        self.runner, self.first = runner, None

    def __call__(self, x):
        out = self.runner(x)
        if self.first is None:
            self.first = out.clone()
        return out


def run_case(segmenter, image, *, probabilities: bool) -> dict:
    """Seconds, tiles and peak RSS of one case; with ``probabilities`` also the softmax and the first tile's logits."""
    predictor = segmenter._stages[0].predictor
    data = image.array[None].astype(np.float32)
    properties = {"spacing": [float(s) for s in image.spacing[::-1]]}
    predictor.runner.first = None
    with PeakRss() as rss:
        t0 = time.perf_counter()
        out = predictor.predict_single_npy_array(data, dict(properties), None, None, probabilities)
        seconds = time.perf_counter() - t0
    # peak RSS of the process, and what the case added to what was already loaded (models, earlier runners)
    row = {"seconds": seconds, "tiles": predictor.tiles_total, "peak_rss_gib": rss.peak / 2**30,
           "case_rss_gib": (rss.peak - rss.start) / 2**30}  # fmt: skip
    if probabilities:
        row.update(probabilities=out[1], first_tile=predictor.runner.first)
    return row


def demo_dice(variants: list[Variant]) -> dict[str, dict]:
    """Minimum Dice over the structures of each variant against eager fp32, demo model on a synthetic knee."""
    from pipeline import weights
    from pipeline.segmentation.backends import compare_labels
    from pipeline.synthetic import PhantomSpec, make_phantom, render_mr

    # At the demo model's own 1 mm grid nothing is resampled, so the network dominates the time.
    image = render_mr(make_phantom(PhantomSpec(side="right", spacing=(1.0, 1.0, 1.0))).labels, seed=2024)
    segmenter = load_segmenter(weights.resolve_model("demo"), demo=True)
    labels, out = {}, {}
    for variant in variants:
        try:
            use_variant(segmenter, variant)
            labels[variant.name] = segmenter.predict(image).labels.array
        except Exception as exc:
            out[variant.name] = {"unavailable": f"{exc.__class__.__name__}: {exc}"}
            continue
        compared = compare_labels(labels[BASELINE.name], labels[variant.name])
        out[variant.name] = {"demo_dice_min": compared["dice_min"], "demo_dice": compared["dice"]}
    return out


def run_variants(folder: Path, image, variants: list[Variant], repeat: int) -> dict[str, dict]:
    """First pass: every variant once, with agreement against the first (eager fp32). Further passes (``repeat``)
    time the variants in turn again, so that a change in the machine's load hits every backend alike."""
    import torch

    from pipeline.segmentation.backends import compare_logits

    t0 = time.perf_counter()
    segmenter = load_segmenter(folder, demo=False)
    print(f"  model load {time.perf_counter() - t0:.1f} s", flush=True)
    predictor = segmenter._stages[0].predictor
    rows: dict[str, dict] = {}
    runners: dict[str, object] = {}
    reference = reference_tile = None
    for variant in variants:
        row: dict = {"backend": variant.backend, "precision": variant.precision}
        try:
            t0 = time.perf_counter()
            row["backend_info"] = use_variant(segmenter, variant)
            row["load_s"] = time.perf_counter() - t0  # includes the one-off ONNX export for the first graph backend
            case = run_case(segmenter, image, probabilities=True)
        except Exception as exc:
            rows[variant.name] = {**row, "unavailable": f"{exc.__class__.__name__}: {exc}"}
            print(f"  {variant.name:28s} unavailable: {exc}", flush=True)
            continue
        if repeat > 1:  # kept for the interleaved passes (their memory then adds to the later rows' peak RSS)
            runners[variant.name] = predictor.runner
        probabilities, first_tile = case.pop("probabilities"), case.pop("first_tile")
        if reference is None:
            reference, reference_tile = probabilities, first_tile
        row.update(case, all_seconds=[case["seconds"]])
        row.update(agreement(reference, probabilities))
        row["max_softmax_diff"] = compare_logits(reference_tile, first_tile)["max_softmax_diff"]
        rows[variant.name] = row
        print(f"  {variant.name:28s} {row['seconds']:8.1f} s  argmax {row['argmax_agreement']:.5f}  "
              f"load {row['load_s']:.1f} s  (load average {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
        del probabilities
        gc.collect()
    for _ in range(repeat - 1):
        for name, runner in runners.items():
            predictor.runner = runner
            layout = torch.channels_last_3d if getattr(runner.runner, "channels_last", False) else None
            predictor.network.to(memory_format=layout or torch.contiguous_format)
            case = run_case(segmenter, image, probabilities=False)
            row = rows[name]
            row["all_seconds"].append(case["seconds"])
            row["seconds"] = min(row["all_seconds"])
            print(f"  {name:28s} {case['seconds']:8.1f} s  (load average {os.getloadavg()[0]:.1f})", flush=True)
    return rows


def sliding_window_settings() -> dict:
    """Tile step, Gaussian weighting and tile skipping: tiles of the published geometry, and what each does to the
    demo model's segmentation (Dice against the defaults) of a synthetic knee in a DESS-sized field of view."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    from pipeline import weights
    from pipeline.segmentation.backends import compare_labels
    from pipeline.synthetic import make_phantom, render_mr
    from pipeline.volume import Volume

    patch, knee_shape = (80, 192, 160), SHAPE_KJI  # published 3d_fullres patch, 0.7 x 0.36 x 0.36 mm (no resampling)
    tiles = {step: int(np.prod([len(s) for s in compute_steps_for_sliding_window(knee_shape, patch, step)]))
             for step in (0.5, 0.75, 1.0)}  # fmt: skip
    # The phantom knee in the middle of a 384 x 384 x 160 field of view of soft tissue (what the demo model knows).
    knee = make_phantom(side="right").labels
    big = np.zeros(SHAPE_KJI, np.uint8)
    at = tuple(slice((n - k) // 2, (n - k) // 2 + k) for n, k in zip(SHAPE_KJI, knee.array.shape, strict=True))
    big[at] = knee.array
    image = render_mr(Volume(big, knee.spacing, knee.origin, knee.direction), seed=2024)
    segmenter = load_segmenter(weights.resolve_model("demo"), demo=True)
    predictor = segmenter._stages[0].predictor
    variants = {"defaults (step 0.5, Gaussian)": {}, "step 0.75": {"tile_step_size": 0.75},
                "step 1.0": {"tile_step_size": 1.0}, "no Gaussian weighting": {"use_gaussian": False},
                "skip tiles outside the knee": {"skip_empty_tiles": True}}  # fmt: skip
    rows, reference = {}, None
    for name, changes in variants.items():
        predictor.tile_step_size = changes.get("tile_step_size", 0.5)
        predictor.use_gaussian = changes.get("use_gaussian", True)
        predictor.skip_empty_tiles = changes.get("skip_empty_tiles", False)
        t0 = time.perf_counter()
        result = segmenter.predict(image)
        labels = result.labels.array
        reference = labels if reference is None else reference
        rows[name] = {"seconds": round(time.perf_counter() - t0, 1),
                      "tiles": result.provenance["sliding_window_tiles"][0],
                      "tiles_skipped": result.provenance["tiles_skipped"][0],
                      "dice_min_vs_defaults": round(compare_labels(reference, labels)["dice_min"], 4)}  # fmt: skip
        print(f"  {name:32s} {rows[name]}", flush=True)
    return {"published_tiles_per_step": tiles, "demo": rows}


def judge(rows: dict[str, dict], demo: dict[str, dict]) -> None:
    baseline = rows[BASELINE.name]["seconds"]
    for name, row in rows.items():
        row.update(demo.get(name, {}))
        if "seconds" not in row:
            row["agrees"] = False
            continue
        row["speedup"] = baseline / row["seconds"]
        dice_ok = row.get("demo_dice_min", 0.0) >= MIN_DEMO_DICE
        fp32_ok = row["precision"] != "fp32" or row["argmax_agreement"] >= MIN_ARGMAX_FP32
        row["agrees"] = bool(dice_ok and fp32_ok)


def table(rows: dict[str, dict]) -> str:
    lines = [
        "| backend | s per case | speed-up | tiles | case RSS GiB | max softmax diff (tile) | argmax agreement "
        "| demo Dice min | agrees |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        if "seconds" not in r:
            lines.append(f"| {name} | unavailable: {r.get('unavailable', '')} |||||||| ")
            continue
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {r['speedup']:.2f}x | {r['tiles']} | {r['case_rss_gib']:.2f} "
            f"| {r['max_softmax_diff']:.4f} | {100 * r['argmax_agreement']:.3f} % "
            f"| {r.get('demo_dice_min', float('nan')):.4f} | {'yes' if r['agrees'] else 'no'} |"
        )
    return "\n".join(lines)


def summary(rows: dict[str, dict], extra: dict) -> dict:
    agreeing = [(r["seconds"], n) for n, r in rows.items() if r.get("agrees")]
    best_s, best = min(agreeing)
    baseline = rows[BASELINE.name]
    return {
        "baseline_s": round(baseline["seconds"], 2),
        "best_backend": best,
        "best_precision": rows[best]["precision"],
        "best_s": round(best_s, 2),
        "speedup": round(baseline["seconds"] / best_s, 2),
        "argmax_agreement": rows[best]["argmax_agreement"],
        "max_softmax_diff": rows[best]["max_softmax_diff"],
        "demo_dice_min": rows[best].get("demo_dice_min"),
        **extra,
        "rows": {n: {k: v for k, v in r.items() if k != "backend_info"} for n, r in rows.items()},
        "backend_info": {n: r.get("backend_info") for n, r in rows.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one tile-sized input (under 3 minutes)")
    parser.add_argument("--repeat", type=int, default=None, help="runs per backend, best kept (quick 2, full 1)")
    parser.add_argument("--levers", action="store_true", help="also channels-last and torch.compile (PyTorch)")
    parser.add_argument("--backends", nargs="+", choices=[v.name.replace(" ", "-") for v in VARIANTS[1:]],
                        help="only these (eager fp32, the reference, always runs); default: all")  # fmt: skip
    parser.add_argument("--settings", action="store_true", help="only the sliding-window settings (demo model)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import torch

    if args.settings:
        result = sliding_window_settings()
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return 0

    from pipeline.segmentation.backends import describe_cpu

    started, load_start = time.perf_counter(), os.getloadavg()
    repeat = args.repeat or (2 if args.quick else 1)
    chosen = set(args.backends or [])
    variants = [v for v in VARIANTS if not chosen or v == BASELINE or v.name.replace(" ", "-") in chosen]
    variants += LEVERS if args.levers else []
    with tempfile.TemporaryDirectory(prefix="kneescope-cpu-bench-") as tmp:
        tmp_path = Path(tmp)
        os.environ["KNEESCOPE_EXPORT_DIR"] = str(tmp_path / "export")  # the export is timed, not reused
        plans, dataset_json = derive_plans(tmp_path)
        cfg = plans["configurations"]["3d_fullres"]
        torch.manual_seed(0)
        folder, n_params = write_model_folder(tmp_path / "model", plans, dataset_json)
        shape = tuple(cfg["patch_size"]) if args.quick else SHAPE_KJI
        print(f"ResEnc-M, {n_params / 1e6:.1f} M parameters, patch {cfg['patch_size']}; input {shape}; "
              f"load average {load_start[0]:.2f}; {torch.get_num_threads()} threads", flush=True)  # fmt: skip
        rows = run_variants(folder, knee_sized_image(shape), variants, repeat)
    print("demo model (Dice against eager fp32):", flush=True)
    judge(rows, demo_dice(variants))
    load_end = os.getloadavg()
    print("\n" + table(rows))
    extra = {
        "input_shape": list(shape),
        "repeat": repeat,
        "cpu": describe_cpu(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in load_end],
        "wall_s": round(time.perf_counter() - started, 1),
    }
    result = summary(rows, extra)
    print(f"\nbest: {result['best_backend']} {result['best_s']} s vs eager fp32 {result['baseline_s']} s = "
          f"{result['speedup']}x; load average {load_start[0]:.2f} -> {load_end[0]:.2f}; "
          f"wall {extra['wall_s']} s; CPU {extra['cpu']['model']} {' '.join(extra['cpu']['flags'])}")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
