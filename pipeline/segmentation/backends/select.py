"""Choosing and loading a backend for one network, with the fall-back to PyTorch eager.

``backend='auto'`` on a CPU measures, once per checkpoint and machine, every candidate on one knee-like patch
against eager fp32 and keeps the fastest that agrees (``agreement.agrees``). The measurement is stored as JSON
beside the exported graph (keyed by the checkpoint's sha256 and the machine's fingerprint), so later loads read it
and build only the chosen backend. On CUDA/MPS, 'auto' is PyTorch (with nnU-Net's fp16 autocast on CUDA).

A backend that cannot load (package missing, CPU without bf16, export failure) never stops a run: PyTorch eager
fp32 takes over and a warning says why; provenance records both what was asked for and what ran.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...config import BACKENDS, PRECISIONS
from . import agreement
from .cpu import describe_cpu, fingerprint
from .export import export_folder, exported_onnx
from .runners import OnnxRuntimeRunner, OpenVinoRunner, TorchRunner

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "CANDIDATES", "PRECISIONS", "LoadedRunner", "NetworkSpec", "load_runner", "make_runner"]

#: What 'auto' measures on a CPU, roughly fastest first (eager fp32 is the reference and always allowed).
CANDIDATES = (("openvino", "bf16"), ("openvino", "fp32"), ("onnx", "fp32"), ("torch", "bf16"))
_TIMING_REPEAT_BELOW_S = 10.0  # time a second run when the first was shorter (warm-up matters most there)


@dataclass(frozen=True)
class NetworkSpec:
    """One loaded nnU-Net network and what a backend must know about it."""

    network: Any
    configuration: str
    checkpoint: Path
    checkpoint_sha256: str
    input_shape: tuple[int, ...]
    device: Any


@dataclass
class LoadedRunner:
    """A runner for the predictor and its provenance record."""

    runner: Any
    info: dict = field(default_factory=dict)


def make_runner(spec: NetworkSpec, backend: str, precision: str) -> Any:
    """Build one backend exactly as asked (raises when it cannot run here)."""
    import torch

    if backend == "torch":
        return TorchRunner(spec.network, precision=precision)
    folder = export_folder(spec.checkpoint)
    graph = exported_onnx(
        spec.network,
        folder=folder,
        configuration=spec.configuration,
        checkpoint_sha256=spec.checkpoint_sha256,
        input_shape=spec.input_shape,
    )
    threads = torch.get_num_threads()
    if backend == "onnx":
        runner: Any = OnnxRuntimeRunner(
            graph.path, spec.input_shape, spec.network, threads=threads, precision=precision
        )
    elif backend == "openvino":
        cache = folder / "openvino-cache"
        runner = OpenVinoRunner(
            graph.path, spec.input_shape, spec.network, threads=threads, precision=precision, cache_dir=cache
        )
    else:
        raise ValueError(f"unknown backend {backend!r}")
    runner.export = graph.describe()
    return runner


def load_runner(
    spec: NetworkSpec, *, backend: str, precision: str, make_patch: Callable[[], np.ndarray] | None = None
) -> LoadedRunner:
    """The runner for ``backend``/``precision`` (see the module docstring); never raises for a backend problem."""
    requested = {"backend": backend, "precision": precision}
    if spec.device.type != "cpu":
        if backend in ("onnx", "openvino"):
            logger.warning("Backend %s runs on the CPU only; device %s uses PyTorch.", backend, spec.device)
        runner = TorchRunner(spec.network)  # not called there (the segmenter leaves nnU-Net's own call in place)
        return LoadedRunner(runner, _info(runner, requested, device=spec.device))
    if backend == "auto":
        return _auto(spec, precision, requested, make_patch)
    chosen = "fp32" if precision == "auto" else precision
    try:
        runner = make_runner(spec, backend, chosen)
    except Exception as exc:  # any failure to build a backend falls back; the reason is logged and recorded
        return _fallback(spec, requested, f"{backend} ({chosen}) could not load: {exc.__class__.__name__}: {exc}")
    return LoadedRunner(runner, _info(runner, requested))


def _fallback(spec: NetworkSpec, requested: dict, reason: str) -> LoadedRunner:
    logger.warning("%s. Using PyTorch eager fp32 instead.", reason)
    runner = TorchRunner(spec.network)
    return LoadedRunner(runner, _info(runner, requested, fallback=reason))


def _info(runner: Any, requested: dict, **extra: Any) -> dict:
    info = {**runner.describe(), "requested": requested}
    if getattr(runner, "export", None):
        info["export"] = runner.export
    info.update({k: (str(v) if k == "device" else v) for k, v in extra.items()})
    return info


# --- auto -----------------------------------------------------------------------------------------------------
def _auto(spec: NetworkSpec, precision: str, requested: dict, make_patch) -> LoadedRunner:
    candidates = [c for c in CANDIDATES if precision == "auto" or c[1] == precision]
    path = _calibration_path(spec, candidates)
    cached = _read_calibration(path)
    if cached is not None:
        backend, chosen = cached["chosen"]["backend"], cached["chosen"]["precision"]
        try:
            runner = make_runner(spec, backend, chosen)
        except Exception as exc:
            return _fallback(spec, requested, f"auto's choice {backend} ({chosen}) could not load: {exc}")
        return LoadedRunner(runner, _info(runner, requested, selection=_selection(cached, path, cached=True)))
    # Said at WARNING so the command line (which logs warnings only) shows why this load takes a minute, once.
    logger.warning(
        "Measuring which CPU backend runs %s fastest on this machine (once; up to a minute). The choice is kept in %s.",
        spec.configuration,
        path.parent,
    )
    try:
        patch = make_patch() if make_patch is not None else _smooth_noise(spec.input_shape)
        rows, runner = calibrate(spec, candidates, patch)
    except Exception as exc:  # the measurement itself failed: eager is always correct
        return _fallback(spec, requested, f"auto could not measure the backends: {exc.__class__.__name__}: {exc}")
    record = {
        "chosen": {"backend": runner.backend, "precision": runner.precision},
        "candidates": rows,
        "cpu": describe_cpu(),
        "patch": "synthetic knee, the model's own preprocessing" if make_patch is not None else "smoothed noise",
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_calibration(path, record)
    logger.info("auto backend for %s: %s (%s)", spec.configuration, runner.backend, runner.precision)
    return LoadedRunner(runner, _info(runner, requested, selection=_selection(record, path, cached=False)))


def calibrate(spec: NetworkSpec, candidates, patch: np.ndarray) -> tuple[list[dict], Any]:
    """Time every candidate on ``patch`` and compare it with eager fp32; returns (table rows, fastest agreeing)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float32))
    best = TorchRunner(spec.network)
    reference, best_s = _timed(best, x)
    rows = [{"backend": "torch", "precision": "fp32", "seconds": round(best_s, 3), "agrees": True}]
    for backend, precision in candidates:
        row: dict = {"backend": backend, "precision": precision}
        try:
            runner = make_runner(spec, backend, precision)
            logits, seconds = _timed(runner, x)
        except Exception as exc:
            rows.append({**row, "unavailable": f"{exc.__class__.__name__}: {exc}"})
            continue
        metrics = agreement.compare_logits(reference, logits)
        ok = agreement.agrees(metrics, precision)
        rows.append({**row, "seconds": round(seconds, 3), "agrees": ok, **_rounded(metrics)})
        if ok and seconds < best_s:
            best, best_s = runner, seconds
    return rows, best


def _timed(runner: Any, x: Any) -> tuple[Any, float]:
    import torch

    with torch.inference_mode():
        t0 = time.perf_counter()
        out = runner(x)
        seconds = time.perf_counter() - t0
        if seconds < _TIMING_REPEAT_BELOW_S:
            t0 = time.perf_counter()
            out = runner(x)
            seconds = min(seconds, time.perf_counter() - t0)
    return out, seconds


def _rounded(metrics: dict) -> dict:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}


def _smooth_noise(shape: tuple[int, ...]) -> np.ndarray:
    from scipy import ndimage

    noise = np.random.default_rng(0).normal(0, 1, shape).astype(np.float32)
    return ndimage.gaussian_filter(noise, (0, 0, 2, 2, 2)[-len(shape) :]) * 3


def _calibration_path(spec: NetworkSpec, candidates) -> Path:
    import torch

    versions: dict[str, str | None] = {"torch": str(torch.__version__)}
    for module in ("onnxruntime", "openvino"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # missing or broken: part of the fingerprint either way
            versions[module] = None
    key = fingerprint(
        checkpoint=spec.checkpoint_sha256, shape=spec.input_shape, candidates=candidates, versions=versions
    )
    return export_folder(spec.checkpoint) / f"auto-{spec.configuration}-{spec.checkpoint_sha256[:16]}-{key}.json"


def _read_calibration(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
        if not {"backend", "precision"} <= set(record["chosen"]):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def _write_calibration(path: Path, record: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # cohort workers may measure at once
        partial.write_text(json.dumps(record, indent=2))
        os.replace(partial, path)
    except OSError as exc:  # a read-only cache only costs a new measurement next time
        logger.warning("Could not store the backend measurement in %s: %s", path, exc)


def _selection(record: dict, path: Path, *, cached: bool) -> dict:
    return {
        "method": "fastest backend that agrees with PyTorch eager fp32 on this machine",
        "rule": {"min_dice": agreement.MIN_DICE, "min_argmax_agreement_fp32": agreement.MIN_ARGMAX_AGREEMENT_FP32},
        "measurement": str(path),
        "from_cache": cached,
        "measured": record.get("measured"),
        "candidates": record["candidates"],
    }
