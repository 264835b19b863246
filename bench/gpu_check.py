"""GPU check without weights: the published knee architecture with random weights, timed through our engine.

1. Plans are derived the way nnU-Net derives them for the published model: ``nnUNetPlannerResEncM`` (ResEnc-M
   preset) on a dataset fingerprint of sagittal DESS knees, 384 x 384 x 160 voxels of 0.36 x 0.36 x 0.7 mm
   (array order 160 x 384 x 384, spacing 0.7 x 0.36 x 0.36). This runs on any machine and is printed.
2. With CUDA: a model folder with those plans, the knee labels and a random-weight checkpoint is loaded by
   ``pipeline.segmentation.Segmenter`` and one knee-sized image is segmented with fp16 autocast on/off and test-time
   mirroring off/on (seconds per case, sliding-window tiles, peak GPU memory). Random weights segment nothing,
   so the "no knee structures found" check is switched off (``require_knee=False``); only speed is measured.

3. ``--backends``: the inference backends of ``pipeline.segmentation.backends`` on the same image, each against
   PyTorch fp32 on the same device (argmax agreement of the whole case; a warm-up run first builds cuDNN plans or
   the TensorRT engine): PyTorch fp32 / fp16 / bf16 autocast, fp16 with channels-last 3-D, fp16 with
   ``torch.compile``, and the exported ONNX graph in ONNX Runtime's CUDA and TensorRT (fp16) providers. The ONNX
   Runtime rows need an ``onnxruntime-gpu`` build (``pip install onnxruntime-gpu==1.31.1`` instead of
   ``onnxruntime``; the CPU build says "lacks CUDAExecutionProvider" and the row is marked unavailable).

Without CUDA the timing is skipped (exit code 0) unless ``--device cpu`` asks for a (slow) CPU smoke run, e.g.
``--device cpu --shape 80 192 160 --runs fp32`` (one tile) or ``--device cpu --shape 80 192 160 --runs fp32
--backends torch-fp32 torch-bf16``.

    .venv/bin/python bench/gpu_check.py [--runs fp16 fp32 fp16+mirror fp32+mirror] [--backends all] [--json out.json]
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
#: GPU backends: (kind, precision, options). torch-fp32 first: it is the reference of the others.
BACKENDS = {
    "torch-fp32": ("torch", "fp32", {}),
    "torch-fp16": ("torch", "fp16", {}),
    "torch-bf16": ("torch", "bf16", {}),
    "torch-fp16-channels-last": ("torch", "fp16", {"channels_last": True}),
    "torch-fp16-compile": ("torch", "fp16", {"compile": True}),
    "ort-cuda-fp32": ("onnx", "fp32", {"providers": ["CUDAExecutionProvider"]}),
    "ort-tensorrt-fp16": ("onnx", "fp16", {"providers": "tensorrt"}),
}


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


def agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    """Case level: max |softmax difference| and argmax agreement, in slabs (no third full-size array is made)."""
    max_diff, same = 0.0, 0
    for k in range(0, reference.shape[1], 8):
        a, b = reference[:, k : k + 8], other[:, k : k + 8]
        max_diff = max(max_diff, float(np.abs(a - b).max()))
        same += int((a.argmax(0) == b.argmax(0)).sum())
    return {"case_max_softmax_diff": max_diff, "argmax_agreement": same / (reference[0].size)}


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


def backend_runner(name: str, stage, device: str, cache: Path):
    """The runner of one ``BACKENDS`` entry for a loaded stage (raises when it cannot run here)."""
    import copy

    import torch

    from pipeline.segmentation.backends import OnnxRuntimeRunner, TorchRunner, exported_onnx
    from pipeline.weights import sha256_file

    kind, precision, options = BACKENDS[name]
    network = stage.predictor.network
    network.to(memory_format=torch.contiguous_format)  # undo a previous channels-last run
    if kind == "torch":
        return TorchRunner(network, precision=precision, device_type=device, **options)
    providers = options["providers"]
    wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"] if providers == "tensorrt" else providers
    import onnxruntime

    missing = [p for p in wanted if p not in onnxruntime.get_available_providers()]
    if missing:  # say so before spending a minute on the export
        raise RuntimeError(f"this onnxruntime build lacks {', '.join(missing)} (install onnxruntime-gpu)")
    shape = (1, 1, *stage.predictor.configuration_manager.patch_size)
    graph = exported_onnx(copy.deepcopy(network).cpu(), folder=cache, configuration=stage.configuration,
                          checkpoint_sha256=sha256_file(stage.checkpoint), input_shape=shape)  # fmt: skip
    if providers == "tensorrt":  # fp16 engines, cached between runs; CUDA takes any node TensorRT cannot
        trt = {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}
        providers = [("TensorrtExecutionProvider", trt), "CUDAExecutionProvider"]
    return OnnxRuntimeRunner(graph.path, shape, network, threads=torch.get_num_threads(), precision=precision,
                             providers=providers)  # fmt: skip


def time_backends(folder: Path, image, names: list[str], device: str, cache: Path) -> list[dict]:
    """Each backend on one case: seconds, tiles, peak GPU memory, argmax agreement with torch-fp32."""
    import torch

    from pipeline import segmentation as segment
    from pipeline.config import InferenceOptions

    options = InferenceOptions(device=device, backend="torch")
    segmenter = segment.Segmenter.from_folders([folder], fold=0, options=options, require_knee=False)
    stage = segmenter._stages[0]
    data = image.array[None].astype(np.float32)
    properties = {"spacing": [float(s) for s in image.spacing[::-1]]}
    cuda = device == "cuda"
    rows, reference = [], None
    for name in sorted(names, key=list(BACKENDS).index):
        try:
            stage.predictor.runner = backend_runner(name, stage, device, cache)
            if cuda:
                stage.predictor.predict_single_npy_array(data, dict(properties), None, None, False)  # warm-up
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            _, probs = stage.predictor.predict_single_npy_array(data, dict(properties), None, None, True)
            if cuda:
                torch.cuda.synchronize()
        except Exception as exc:
            rows.append({"run": name, "unavailable": f"{exc.__class__.__name__}: {exc}"})
            print(f"  {name:26s} unavailable: {exc}", flush=True)
            continue
        seconds = time.perf_counter() - t0
        reference = probs if reference is None else reference
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        rows.append({"run": name, "seconds": round(seconds, 2), "tiles": stage.predictor.tiles_total,
                     "peak_gpu_gib": round(peak, 2), **agreement(reference, probs)})  # fmt: skip
        print(f"  {name:26s} {seconds:7.1f} s  argmax {rows[-1]['argmax_agreement']:.5f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="*", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--shape", nargs=3, type=int, default=list(SHAPE_KJI), help="image array shape (k j i)")
    parser.add_argument("--backends", nargs="*", default=[], choices=[*BACKENDS, "all"],
                        help="also time these inference backends (all: every one)")  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    backends = list(BACKENDS) if "all" in args.backends else args.backends
    if backends and "torch-fp32" not in backends:
        backends.insert(0, "torch-fp32")  # the reference of the agreement column
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
        image = knee_sized_image(tuple(args.shape))
        rows = time_runs(folder, image, args.runs, args.device) if args.runs else []
        backend_rows = time_backends(folder, image, backends, args.device, tmp / "export") if backends else []
    print(f"\nImage {tuple(args.shape)} voxels, {args.device}")
    print("| run | seconds per case | network s | tiles | peak GPU GiB |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['seconds']:.1f} | {r['network_s']:.1f} | {r['tiles']} | {r['peak_gpu_gib']} |")
    if backend_rows:
        print("\n| backend | seconds per case | tiles | peak GPU GiB | argmax agreement with torch-fp32 |")
        print("|---|---|---|---|---|")
    for r in backend_rows:
        if "unavailable" in r:
            print(f"| {r['run']} | unavailable: {r['unavailable']} | | | |")
        else:
            print(f"| {r['run']} | {r['seconds']:.1f} | {r['tiles']} | {r['peak_gpu_gib']} "
                  f"| {100 * r['argmax_agreement']:.3f} % |")  # fmt: skip
    if args.json:
        payload = {"plans_3d_fullres": cfg, "parameters": n_params, "runs": rows, "backends": backend_rows}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
