"""Benchmark: NSM latent fitting and meshing cost with the full-size published architecture (random weights).

Random weights give the real compute cost (the network is the same size as 647), not a meaningful shape, so:
- fitting is timed per iteration on 20,000 points for a few iterations and extrapolated to the published maximum of
  2,000 (early stopping usually ends sooner; upstream reports 60-90 s per knee on a GPU);
- meshing is timed as decoder throughput (points/s) and extrapolated to a 256^3 grid, in full and with the narrow
  band (the 1/64 coarse grid + the fine points near the surface; that share, ~40 % at 256, was measured on the tiny
  test model's femur-like two-object shape, so it is an estimate for the real model).

``--precision fp32 bf16`` runs the measurement once per decoder precision (``FitSettings.precision``: bf16 autocast
in the fit and in meshing) and adds agreement with fp32: the max |SDF difference| of the full-size decoder on 20,000
random points (random weights), and, on the tiny *trained* decoder of the tests (``tests/shape_fixtures.py``), a
fit of a known shape in both precisions: the fitted latents' distance and the best loss of each.

Usage: ``python bench/shape_model.py [--device cpu|cuda] [--iterations 3] [--objects 2] [--precision fp32 bf16]``.
``bench/gpu_check.py`` can call ``run_benchmark(device="cuda")`` and ``format_table``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's pipeline, not an installed one

from pipeline.shape.decoder import TriplanarDecoder
from pipeline.shape.fit import FitSamples, FitSettings, fit_latent
from pipeline.shape.meshing import evaluate

PUBLISHED_ITERATIONS = 2000
GRID_POINTS_256 = 256**3
NARROW_BAND_FRACTION = 0.40  # share of fine-grid points evaluated in narrow-band mode (measured on the toy shape)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int) -> float:
    """Mean seconds of ``fn()`` over ``repeats`` runs after one warm-up run."""
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def _synthetic_samples(n_points: int, n_objects: int, seed: int = 0) -> FitSamples:
    """Points on a femur-sized ellipsoid (model units) split over the surfaces, zero targets."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_points, 3))
    points = directions / np.linalg.norm(directions, axis=1, keepdims=True) * [0.6, 0.45, 0.5]
    surface_id = np.arange(n_points) % n_objects
    return FitSamples(points, np.zeros((n_points, n_objects)), surface_id)


def run_benchmark(
    *,
    device: str | None = None,
    iterations: int = 3,
    n_points: int = 20_000,
    objects: int = 2,
    seed: int = 0,
    precision: str = "fp32",
) -> dict:
    """Time the full-size decoder on ``device`` (default: CUDA if available). Returns seconds and extrapolations."""
    from pipeline.shape.fit import decoder_precision

    torch.manual_seed(seed)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    start = time.perf_counter()
    decoder = TriplanarDecoder.from_config({"objects_per_decoder": objects}).to(dev).eval().requires_grad_(False)
    build_s = time.perf_counter() - start
    latent = torch.zeros(1, decoder.latent_size, device=dev)
    points = torch.rand(1, n_points, 3, device=dev) * 2 - 1

    with torch.no_grad(), decoder_precision(dev, precision):
        planes_s = _timed(lambda: decoder.planes(latent), dev, iterations)
        planes = decoder.planes(latent)
        mlp_s = _timed(lambda: decoder.decode_points(planes, points), dev, iterations)
        chunk = torch.rand(65_536, 3, device=dev) * 2 - 1
        eval_s = _timed(lambda: evaluate(decoder, planes, chunk, chunk=65_536), dev, max(1, iterations // 2))
    throughput = 65_536 / eval_s

    samples = _synthetic_samples(n_points, objects, seed)
    settings = FitSettings(n_iterations=iterations + 1, patience=10**6, n_samples=n_points, precision=precision)
    fit_latent(decoder, samples, FitSettings(n_iterations=1, n_samples=n_points, precision=precision))  # warm-up
    _sync(dev)
    start = time.perf_counter()
    fitted = fit_latent(decoder, samples, settings)
    _sync(dev)
    per_iteration = (time.perf_counter() - start) / fitted.iterations

    narrow_points = GRID_POINTS_256 * (NARROW_BAND_FRACTION + 1 / 64)
    with torch.no_grad(), decoder_precision(dev, precision):
        sdf = decoder.decode_points(planes, points).float()
    return {
        "precision": precision,
        "sdf_sample": sdf.cpu(),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "n_points": n_points,
        "build_s": build_s,
        "planes_forward_s": planes_s,
        "mlp_forward_s": mlp_s,
        "fit_iteration_s": per_iteration,
        "fit_iterations_timed": fitted.iterations,
        "fit_2000_iterations_s": per_iteration * PUBLISHED_ITERATIONS,
        "decoder_points_per_s": throughput,
        "mesh_256_full_s": GRID_POINTS_256 / throughput,
        "mesh_256_narrow_band_s": narrow_points / throughput,
    }


def format_table(result: dict) -> str:
    """A short fixed-width table of ``run_benchmark``'s result."""
    rows = [
        ("device", f"{result['device']} ({result['device_name']}), {result['torch_threads']} torch threads"),
        ("precision", result["precision"]),
        ("load average (1 min)", f"{result['load_average']:.2f}" if result["load_average"] is not None else "n/a"),
        ("build decoder (random)", f"{result['build_s']:.2f} s"),
        ("plane generator forward", f"{result['planes_forward_s'] * 1e3:.0f} ms"),
        (f"MLP forward, {result['n_points']} pts", f"{result['mlp_forward_s'] * 1e3:.0f} ms"),
        (
            "fit iteration (fwd+bwd+Adam)",
            f"{result['fit_iteration_s']:.3f} s (mean of {result['fit_iterations_timed']})",
        ),
        (f"-> {PUBLISHED_ITERATIONS} iterations", f"{result['fit_2000_iterations_s'] / 60:.1f} min"),
        ("decoder throughput", f"{result['decoder_points_per_s'] / 1e6:.2f} M points/s"),
        ("-> 256^3 grid, full", f"{result['mesh_256_full_s']:.0f} s"),
        ("-> 256^3 grid, narrow band (est.)", f"{result['mesh_256_narrow_band_s']:.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def tiny_fit_agreement(precisions: list[str], *, seed: int = 3) -> dict[str, dict]:
    """The tests' tiny trained decoder fits one known shape per precision: latent and loss against fp32."""
    from pipeline.shape.fit import fitting_samples
    from tests.fixtures.shape import LATENT_SCALE, decoded_surfaces, train_tiny_decoder

    decoder = train_tiny_decoder()
    truth = np.random.default_rng(seed).normal(0, 1, decoder.latent_size) * LATENT_SCALE
    bone, cartilage = decoded_surfaces(decoder, truth)
    samples = fitting_samples(bone, cartilage, decoder.n_objects, 0.1)
    fits = {p: fit_latent(decoder, samples, FitSettings(n_samples=4000, precision=p)) for p in precisions}
    reference = fits[precisions[0]]
    return {
        p: {
            "latent_error_vs_truth": float(np.linalg.norm(f.latent - truth)),
            "latent_distance_vs_first": float(np.linalg.norm(f.latent - reference.latent)),
            "best_loss": f.best_loss,
            "iterations": f.iterations,
        }
        for p, f in fits.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--iterations", type=int, default=3, help="fit iterations to time (after one warm-up)")
    parser.add_argument("--points", type=int, default=20_000, help="points per fit iteration (published: 20000)")
    parser.add_argument("--objects", type=int, default=2, choices=(1, 2), help="2 = model 647, 1 = model 551")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=("fp32", "bf16"))
    args = parser.parse_args()
    results = [
        run_benchmark(
            device=args.device, iterations=args.iterations, n_points=args.points, objects=args.objects, precision=p
        )
        for p in args.precision
    ]
    for result in results:
        print(format_table(result) + "\n")
    if len(results) > 1:
        first = results[0]
        for result in results[1:]:
            diff = float((result["sdf_sample"] - first["sdf_sample"]).abs().max())
            print(f"{result['precision']} vs {first['precision']}: fit iteration "
                  f"{first['fit_iteration_s'] / result['fit_iteration_s']:.2f}x faster, decoder throughput "
                  f"{result['decoder_points_per_s'] / first['decoder_points_per_s']:.2f}x, max |SDF difference| "
                  f"{diff:.4f} (random weights, SDF clamp 0.1)")  # fmt: skip
        for p, row in tiny_fit_agreement(args.precision).items():
            print(f"tiny trained decoder, {p}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()))


if __name__ == "__main__":
    main()
