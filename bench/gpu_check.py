"""GPU check without weights: the published knee architecture with random weights, timed through our engine.

1. Plans are derived the way nnU-Net derives them for the published model: ``nnUNetPlannerResEncM`` (ResEnc-M
   preset) on a dataset fingerprint of sagittal DESS knees, 384 x 384 x 160 voxels of 0.36 x 0.36 x 0.7 mm
   (array order 160 x 384 x 384, spacing 0.7 x 0.36 x 0.36). This runs on any machine and is printed.
2. With CUDA: a model folder with those plans, the knee labels and a random-weight checkpoint is loaded by
   ``pipeline.segmentation.Segmenter`` and one knee-sized image is segmented with fp16 autocast on/off and test-time
   mirroring off/on (seconds per case, sliding-window tiles, peak GPU memory). Random weights segment nothing,
   so the "no knee structures found" check is switched off (``require_knee=False``); only speed is measured.

Without CUDA the timing is skipped (exit code 0) unless ``--device cpu`` asks for a (slow) CPU smoke run, e.g.
``--device cpu --shape 80 192 160 --runs fp32`` (one tile).

    .venv/bin/python bench/gpu_check.py [--runs fp16 fp32 fp16+mirror fp32+mirror] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPE_KJI = (160, 384, 384)  # array order of a sagittal DESS: 160 slices of 384 x 384
SPACING_IJK = (0.36, 0.36, 0.7)  # mm, ITK order
RUNS = {"fp16": (True, False), "fp32": (False, False), "fp16+mirror": (True, True), "fp32+mirror": (False, True)}


def derive_plans(tmp: Path, n_cases: int = 10) -> dict:
    """nnU-Net's own ResEnc-M planner on a fingerprint of identical 384x384x160, 0.36x0.36x0.7 mm knees."""
    # nnunetv2.paths reads these at import time: set them before the first nnunetv2 import.
    for name in ("raw", "preprocessed", "results"):
        os.environ[f"nnUNet_{name}"] = str(tmp / name)
    dataset = "Dataset998_KneePlanCheck"
    raw = tmp / "raw" / dataset
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    from pipeline import labels as L

    labels = {"background": 0, **dict(sorted(L.NATIVE.items(), key=lambda kv: kv[1]))}
    dataset_json = {"channel_names": {"0": "RSS"}, "labels": labels, "numTraining": n_cases, "file_ending": ".nii.gz",
                    "overwrite_image_reader_writer": "SimpleITKIO"}  # fmt: skip
    (raw / "dataset.json").write_text(json.dumps(dataset_json))
    for i in range(n_cases):  # the planner lists the files but reads only the fingerprint
        (raw / "imagesTr" / f"knee{i:03d}_0000.nii.gz").touch()
        (raw / "labelsTr" / f"knee{i:03d}.nii.gz").touch()
    pre = tmp / "preprocessed" / dataset
    pre.mkdir(parents=True)
    fingerprint = {
        "spacings": [list(SPACING_IJK[::-1])] * n_cases,
        "shapes_after_crop": [list(SHAPE_KJI)] * n_cases,
        "median_relative_size_after_cropping": 1.0,
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 1000.0, "mean": 300.0, "median": 280.0, "min": 0.0, "percentile_00_5": 5.0,
            "percentile_99_5": 900.0, "std": 150.0}},
    }  # fmt: skip
    (pre / "dataset_fingerprint.json").write_text(json.dumps(fingerprint))
    from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
        nnUNetPlannerResEncM,
    )

    with contextlib.redirect_stdout(io.StringIO()):  # the planner narrates with print(); keep the table readable
        plans = nnUNetPlannerResEncM(dataset).plan_experiment()
    return json.loads(json.dumps(plans, default=_to_builtin)), dataset_json


def _to_builtin(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value))


def write_model_folder(folder: Path, plans: dict, dataset_json: dict) -> tuple[Path, int]:
    """plans.json, dataset.json and fold_0/checkpoint_final.pth with random weights; returns (folder, n params)."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    pm = PlansManager(plans)
    net = nnUNetTrainer.build_network_architecture(
        pm, pm.get_configuration("3d_fullres"), 1, len(dataset_json["labels"]), enable_deep_supervision=False
    )
    ckpt = {
        "network_weights": net.state_dict(),
        "trainer_name": "nnUNetTrainer",
        "init_args": {"configuration": "3d_fullres", "fold": 0},
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    torch.save(ckpt, folder / "fold_0" / "checkpoint_final.pth")
    return folder, sum(p.numel() for p in net.parameters())


def knee_sized_image(shape_kji: tuple[int, int, int]):
    """Smooth random MR-like intensities on a 0.36 x 0.36 x 0.7 mm grid (content does not matter for speed)."""
    from scipy import ndimage

    from pipeline.volume import Volume

    rng = np.random.default_rng(0)
    array = ndimage.gaussian_filter(rng.normal(200, 80, shape_kji).astype(np.float32), 2) + rng.normal(
        0, 10, shape_kji
    ).astype(np.float32)
    return Volume(np.abs(array), SPACING_IJK, (0.0, 0.0, 0.0), np.eye(3))


def time_runs(folder: Path, image, runs: list[str], device: str) -> list[dict]:
    import torch

    from pipeline import segmentation as segment
    from pipeline.config import InferenceOptions

    rows = []
    for fp16 in sorted({RUNS[r][0] for r in runs}, reverse=True):
        # Random weights segment nothing knee-like: skip that check, only speed is measured.
        segmenter = segment.Segmenter.from_folders(
            [folder], fold=0, options=InferenceOptions(device=device, fp16=fp16), require_knee=False
        )
        if device == "cuda":
            segmenter.predict(image)  # warm-up: cudnn autotuning and allocator growth
        for run in [r for r in runs if RUNS[r][0] == fp16]:
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            result = segmenter.predict(image, mirroring=RUNS[run][1])
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
            info = result.provenance
            rows.append({"run": run, "seconds": round(seconds, 2),
                         "network_s": round(info["seconds"]["3d_fullres"], 2),
                         "tiles": info["sliding_window_tiles"][0], "peak_gpu_gib": round(peak, 2),
                         "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"})  # fmt: skip
            print(f"  {run:12s} {seconds:7.1f} s", flush=True)
        del segmenter
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--shape", nargs=3, type=int, default=list(SHAPE_KJI), help="image array shape (k j i)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kneescope-gpu-check-") as tmp:
        tmp = Path(tmp)
        plans, dataset_json = derive_plans(tmp)
        cfg = plans["configurations"]["3d_fullres"]
        arch = cfg["architecture"]["arch_kwargs"]
        folder, n_params = write_model_folder(tmp / "model", plans, dataset_json)
        print(f"Derived ResEnc-M 3d_fullres plans: patch {cfg['patch_size']}, spacing {cfg['spacing']} mm, "
              f"features {arch['features_per_stage']}, blocks {arch['n_blocks_per_stage']}, "
              f"{n_params / 1e6:.1f} M parameters; lowres spacing "
              f"{[round(s, 3) for s in plans['configurations']['3d_lowres']['spacing']]}")  # fmt: skip
        import torch

        if args.device == "cuda" and not torch.cuda.is_available():
            print("CUDA is not available: timing skipped (use --device cpu for a slow CPU smoke run).")
            return 0
        rows = time_runs(folder, knee_sized_image(tuple(args.shape)), args.runs, args.device)
    print(f"\nImage {tuple(args.shape)} voxels, {rows[0]['device']}")
    print("| run | seconds per case | network s | tiles | peak GPU GiB |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['seconds']:.1f} | {r['network_s']:.1f} | {r['tiles']} | {r['peak_gpu_gib']} |")
    if args.json:
        args.json.write_text(json.dumps({"plans_3d_fullres": cfg, "parameters": n_params, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
