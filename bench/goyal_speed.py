"""Goyal 2-D U-Nets (issue 22): time and peak memory per knee on this CPU, per inference backend, and STAPLE's cost.

The networks are random-weight full-size stand-ins written by real Keras (``bench/goyal_reference.py full-size``):
the DOSMA 2-D U-Net family at the filter counts of DOSMA's own 2-D U-Nets (32, 64, ..., 1024 over six levels; the
published Goyal files' architecture is not documented, see bench/RESULTS.md), sagittal 512x512 and coronal/axial
160x512 inputs, channels first, 10 classes. The knee is a synthetic MR-like knee on a qDESS-sized sagittal grid:
512 x 512 x 160 voxels (0.3125 x 0.3125 x 0.55 mm), so the whole volume path runs at the published sizes.

Every measurement runs in its own child process (peak RSS of that process). A full-size network costs seconds per
slice on 2 shared cores, so per backend the network is timed on real batches of the knee (``--batches`` batches of
4 slices after one warm-up; the model load, and the ONNX export or OpenVINO compilation when a graph is first made,
timed apart), and the rest of the per-knee path (reformat, resize, whitening, argmax, resize back, clean-up) once with
a network that answers instantly. Per knee = 40 batches x seconds per batch + that path + clean-up.
``--full-knee BACKEND`` runs one backend over the whole knee to check the estimate. Ratios are against PyTorch eager
fp32 measured in the same run. STAPLE's fusion is timed on three label maps of the knee's grid.

    bench/.venv-tf/bin/python bench/goyal_reference.py full-size
    .venv/bin/python bench/goyal_speed.py [--backends torch,onnx,openvino,openvino:bf16] [--full-knee openvino]
                                          [--staple] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "bench" / "data"
KNEE = DATA / "goyal_knee_512x512x160.npz"
NETWORKS = {
    "sagittal": DATA / "goyal_fullsize_sagittal.h5",
    "coronal": DATA / "goyal_fullsize_coronal.h5",
    "axial": DATA / "goyal_fullsize_axial.h5",
}
EXPORTS = DATA / "goyal_export"


def make_knee() -> None:
    """The synthetic knee on a 512 x 512 x 160 sagittal grid (as a qDESS series is stored), saved once."""
    from pipeline import labels as L
    from pipeline.synthetic import ORIENTATIONS, PhantomSpec, make_phantom, render_mr
    from pipeline.volume import Volume

    spec = PhantomSpec()
    direction = ORIENTATIONS["sagittal"]
    spacing = np.array([0.3125, 0.3125, 0.55])
    size = np.array([512, 512, 160])
    centre = np.asarray(spec.centre_lps) + np.array([0.0, 0.0, 12.0])
    origin = centre - direction @ (spacing * (size - 1) / 2)
    grid = Volume(np.zeros(size[::-1], np.uint8), tuple(spacing), tuple(origin), direction)
    labels = make_phantom(spec, grid=grid).labels
    image = render_mr(labels, seed=1)
    native = np.zeros(256, np.uint8)
    for structure in L.STRUCTURES:
        native[L.CANONICAL[structure]] = L.NATIVE[structure]
    DATA.mkdir(parents=True, exist_ok=True)
    np.savez(KNEE, image=image.array, native=native[labels.array], spacing=spacing, origin=origin, direction=direction)


def load_knee():
    from pipeline.volume import Volume

    data = np.load(KNEE)
    geometry = (tuple(data["spacing"]), tuple(data["origin"]), data["direction"])
    return Volume(data["image"], *geometry), data["native"]


def _rss_mb() -> int:
    """Peak resident memory of this process since the last :func:`_reset_peak` (Linux VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _reset_peak() -> int:
    """Start peak-memory accounting afresh (after reading the knee); returns the resident MB now."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
    return _rss_mb()


def child_batches(backend: str, precision: str, batches: int) -> dict:
    """Load the sagittal network on a backend and time ``batches`` real batches of the knee (after one warm-up)."""
    import torch

    from pipeline.config import InferenceOptions
    from pipeline.segmentation.devices import select_device
    from pipeline.segmentation.goyal.plane_model import load_plane_model
    from pipeline.segmentation.goyal.plane_path import prepare_slices

    image, _ = load_knee()
    resident = _reset_peak()
    t0 = time.perf_counter()
    options = InferenceOptions(device="cpu", backend=backend, precision=precision)
    model = load_plane_model(NETWORKS["sagittal"], "sagittal", options, select_device("cpu"))
    load_s = time.perf_counter() - t0
    x, _ = prepare_slices(image.array, image.direction, model.layout, model.io.size)
    middle = len(x) // 2
    model.run_batch(model.io.batch(x[middle : middle + model.batch_size]))  # warm-up
    times = []
    for b in range(batches):
        start = middle - (b + 1) * model.batch_size
        t1 = time.perf_counter()
        model.run_batch(model.io.batch(x[start : start + model.batch_size]))
        times.append(time.perf_counter() - t1)
    return {
        "requested": f"{backend}:{precision}",
        "ran": f"{model.backend['backend']}:{model.backend['precision']}",
        "fallback": model.backend.get("fallback"),
        "load_s": round(load_s, 1),
        "batch_size": model.batch_size,
        "s_per_batch": round(float(np.median(times)), 2),
        "s_per_batch_all": [round(t, 2) for t in times],
        "rss_with_knee_mb": resident,
        "peak_rss_mb": _rss_mb(),
        "torch_threads": torch.get_num_threads(),
    }


def child_path() -> dict:
    """The per-knee path around the network, with a network that answers instantly (constant probabilities)."""
    from pipeline.segmentation.goyal.cleanup import clean_native
    from pipeline.segmentation.goyal.plane_path import ModelIO, segment_in_plane
    from pipeline.segmentation.goyal.planes import PLANES
    from pipeline.segmentation.goyal.preprocess import model_input_image

    image, native = load_knee()
    io = ModelIO((512, 512), channels_first=True)
    answer = np.zeros((4, 10, 512, 512), np.float32)
    answer[:, 7, 100:400, 100:400] = 1.0  # a square of "femur" in every slice

    def instant(batch: np.ndarray) -> np.ndarray:
        return answer[: len(batch)]

    rss = _reset_peak()
    t0 = time.perf_counter()
    result = segment_in_plane(model_input_image(image), image.direction, PLANES["sagittal"], io, instant, batch_size=4)
    t1 = time.perf_counter()
    clean_native(result.labels)
    t2 = time.perf_counter()
    return {
        "path_without_network_s": round(t1 - t0, 1),
        "cleanup_s": round(t2 - t1, 1),
        "slices": result.slices,
        "batches": result.batches,
        "rss_with_knee_mb": rss,
        "peak_rss_mb": _rss_mb(),
        "voxels": int(native.size),
    }


def child_knee(backend: str, precision: str, planes: list[str]) -> dict:
    """The whole knee through GoyalSegmenter (load, then predict)."""
    from pipeline.config import InferenceOptions
    from pipeline.segmentation.goyal.segmenter import GoyalSegmenter

    image, _ = load_knee()
    resident = _reset_peak()
    t0 = time.perf_counter()
    options = InferenceOptions(device="cpu", backend=backend, precision=precision)
    segmenter = GoyalSegmenter.from_files([(p, NETWORKS[p]) for p in planes], options=options, require_knee=False)
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    provenance = segmenter.predict(image).provenance
    return {
        "planes": planes,
        "requested": f"{backend}:{precision}",
        "ran": [f"{b['backend']}:{b['precision']}" for b in (p["inference_backend"] for p in provenance["planes"])],
        "load_s": round(load_s, 1),
        "knee_s": round(time.perf_counter() - t1, 1),
        "stage_s": provenance["seconds"],
        "slices": [p["slices"] for p in provenance["planes"]],
        "rss_with_knee_mb": resident,
        "peak_rss_mb": _rss_mb(),
    }


def child_staple() -> dict:
    """MultiLabelSTAPLE on three label maps of the knee's grid: its truth, one voxel tighter, one voxel off."""
    from scipy import ndimage

    from pipeline.segmentation.goyal.staple import staple_fuse

    image, native = load_knee()
    del image
    eroded = native.copy()
    eroded[~ndimage.binary_erosion(native > 0, iterations=1)] = 0
    shifted = np.roll(native, 1, axis=1)
    resident = _reset_peak()
    t0 = time.perf_counter()
    fused = staple_fuse({"sagittal": native, "coronal": eroded, "axial": shifted})
    seconds = time.perf_counter() - t0
    return {
        "voxels": int(native.size),
        "staple_s": round(seconds, 1),
        "rss_with_three_label_maps_mb": resident,
        "peak_rss_mb": _rss_mb(),
        "agreement_with_sagittal": round(float(np.mean(fused.labels == native)), 5),
        "undecided_voxels": fused.undecided_voxels,
    }


def run_child(args: list[str]) -> dict:
    env = {**os.environ, "KNEESCOPE_EXPORT_DIR": str(EXPORTS)}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return {"error": proc.stderr[-1500:], "args": args}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--backends", default="torch,onnx,openvino,openvino:bf16,torch:bf16", help="'none': only the path/STAPLE"
    )
    parser.add_argument("--batches", type=int, default=3, help="timed batches of 4 slices per backend")
    parser.add_argument("--full-knee", help="also run this backend (e.g. openvino) over the whole knee")
    parser.add_argument("--staple", action="store_true", help="time STAPLE's fusion on the knee's grid")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "batches":
            result = child_batches(rest[0], rest[1], int(rest[2]))
        elif kind == "knee":
            result = child_knee(rest[0], rest[1], rest[2:])
        else:
            result = child_path() if kind == "path" else child_staple()
        print(json.dumps(result))
        return
    missing = [str(p) for p in NETWORKS.values() if not p.is_file()]
    if missing:
        sys.exit(f"Missing {missing}: run bench/.venv-tf/bin/python bench/goyal_reference.py full-size first.")
    if not KNEE.is_file():
        print("making the 512 x 512 x 160 synthetic knee ...", flush=True)
        make_knee()
    from pipeline.segmentation.backends import describe_cpu

    report: dict = {"cpu": describe_cpu(), "runs": []}

    def record(row: dict) -> dict:
        report["runs"].append(row)
        print(json.dumps(row), flush=True)
        return row

    path = record({"what": "path", **run_child(["path"])})
    for item in [b for b in args.backends.split(",") if b and b != "none"]:
        backend, _, precision = item.partition(":")
        for attempt in ("first", "cached"):  # first: export/compile counted in load_s; cached: graph reused
            if attempt == "cached" and backend == "torch":
                continue
            row = run_child(["batches", backend, precision or "fp32", str(args.batches)])
            if "s_per_batch" in row:
                rest = path["path_without_network_s"] + path["cleanup_s"]
                row["knee_estimate_s"] = round(path["batches"] * row["s_per_batch"] + rest)
            record({"what": "network", "attempt": attempt, **row})
    if args.full_knee:
        backend, _, precision = args.full_knee.partition(":")
        record({"what": "knee", **run_child(["knee", backend, precision or "fp32", "sagittal"])})
    if args.staple:
        record({"what": "staple", **run_child(["staple"])})
    baseline = next((r for r in report["runs"] if r.get("requested") == "torch:fp32" and "s_per_batch" in r), None)
    if baseline:
        for row in report["runs"]:
            if "s_per_batch" in row:
                row["speed_vs_torch_fp32"] = round(baseline["s_per_batch"] / row["s_per_batch"], 2)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
