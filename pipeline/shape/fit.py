"""Fit a neural shape model to one knee: preprocessing, registration, latent optimisation, reconstruction, ASSD.

Follows the published ShapeMedKnee procedure (model-formats §1.8-1.11, reference-pipeline §2.10-2.11):

1. ``prepare_knee``: orient faces outward, mirror a left knee to a right one about the femur's mean x, clip the femur
   shaft (``clip_femur_top``). Outputs of a left knee stay in that mirrored space.
2. ``register``: similarity ICP of the bone onto the model's mean shape -> 4x4 M (patient mm -> model space).
3. ``fitting_samples``: the registered vertices with SDF targets (0 on their own surface, signed distance to the
   other surface), clamped.
4. ``fit_latent``: Adam on the latent only, L1 on clamped SDFs, stepped learning rate, early stopping.
5. ``reconstruct``: marching cubes of the fitted latent, mapped back to patient mm; ``assd`` per surface.

Arrays: points (N, 3) float64, faces (M, 3) int64, outward. Patient space is LPS mm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from .decoder import TriplanarDecoder
from .geometry import (
    MeshDistance,
    apply_transform,
    assd,
    clip_below,
    femur_clip_height,
    mirror_x,
    orient_outward,
)
from .meshing import extract_surfaces
from .model import ShapeModel
from .registration import similarity_icp

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
Mesh = tuple[np.ndarray, np.ndarray]

_CONFIG_KEYS = {  # model_params_config.json key -> FitSettings field
    "num_iterations_recon": "n_iterations",
    "lr_recon": "lr",
    "lr_update_factor_recon": "lr_update_factor",
    "n_lr_updates_recon": "n_lr_updates",
    "clamp_dist_recon": "clamp_dist",
    "convergence_patience_recon": "patience",
    "n_samples_latent_recon": "n_samples",
    "scale_jointly": "scale_jointly",
}


@dataclass(frozen=True)
class FitSettings:
    """Fitting knobs; defaults are the published 647/551 values. Distances in model units unless noted."""

    n_iterations: int = 2000
    lr: float = 0.005
    lr_update_factor: float = 1.1  # lr = lr0 * factor ** -(step // (n_iterations // n_lr_updates))
    n_lr_updates: int = 100
    clamp_dist: float = 0.1
    patience: int = 50  # stop after this many consecutive non-improving steps (+1)
    n_samples: int = 20_000  # points per step, split evenly over the surfaces
    latent_init_std: float = 0.01
    seed: int = 42
    resolution: int = 256  # grid samples per axis for the reconstruction
    icp_iterations: int = 100
    icp_landmarks: int = 1000
    scale_jointly: bool = True  # False: the 2024 model 231's extra centre/max-radius normalisation
    chunk_points: int = 65_536  # decoder points per call when meshing
    narrow_band: bool = True  # evaluate the fine grid only near the surface (same surfaces, far fewer calls)
    # Decoder arithmetic: "fp32", or "bf16" autocast (fit and meshing; bench/shape_model.py measures speed and
    # agreement). fp32 stays the default: bf16 was not measured to keep the fitted latent (bench/RESULTS.md).
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")

    @classmethod
    def from_config(cls, config: Mapping, **overrides: object) -> FitSettings:
        """Settings from a ``model_params_config.json`` dict, then ``overrides`` (None values are ignored)."""
        _check_fit_config(config)
        types: dict[str, Any] = {f.name: type(f.default) for f in fields(cls)}
        values = {name: types[name](config[key]) for key, name in _CONFIG_KEYS.items() if key in config}
        unknown = set(overrides) - set(types)
        if unknown:
            raise TypeError(f"unknown fit settings: {sorted(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _check_fit_config(config: Mapping) -> None:
    """Reject config switches whose upstream behaviour is not reproduced here, instead of silently ignoring them."""
    if config.get("convergence_type_recon", "recon_loss") != "recon_loss":
        raise ValueError(f"convergence_type_recon={config['convergence_type_recon']!r} is not supported")
    for key in ("l2reg_recon", "get_rand_pts_recon", "fix_mesh_recon"):
        if config.get(key):
            raise ValueError(f"{key}={config[key]!r} is not supported (the published models use false)")


# --- 1. preprocessing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedKnee:
    """Fitting inputs in patient mm, right-knee frame (mirrored if the knee was left), femur shaft clipped."""

    bone: Mesh
    cartilage: Mesh | None
    mirrored: bool
    mirror_centre_x: float | None  # the plane x = c used for mirroring (mm)
    clip_z: float | None  # the femur was kept below this z (mm)


def prepare_knee(bone: Mesh, cartilage: Mesh | None, side: str, *, clip: bool = True) -> PreparedKnee:
    """Mirror a left knee (x -> 2c - x, c = mean femur x, same c for the cartilage) and clip the femur top."""
    side = side.strip().lower()
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    bone_points = np.asarray(bone[0], dtype=np.float64)
    meshes = [(bone_points, orient_outward(bone_points, np.asarray(bone[1], dtype=np.int64)))]
    if cartilage is not None:
        cart_points = np.asarray(cartilage[0], dtype=np.float64)
        meshes.append((cart_points, orient_outward(cart_points, np.asarray(cartilage[1], dtype=np.int64))))
    centre_x = None
    if side == "left":  # the models were trained on right knees only
        centre_x = float(bone_points[:, 0].mean())
        meshes = [(mirror_x(p, centre_x), f[:, ::-1].copy()) for p, f in meshes]  # a reflection flips the winding
    clip_z = None
    if clip:
        clip_z = femur_clip_height(meshes[0][0])
        meshes[0] = clip_below(*meshes[0], clip_z)
    return PreparedKnee(meshes[0], meshes[1] if len(meshes) > 1 else None, side == "left", centre_x, clip_z)


# --- 2. registration ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFrame:
    """Patient mm -> model space: x_model = (M x_mm - centre) / scale; ``matrix`` M is the 4x4 ICP result."""

    matrix: np.ndarray
    centre: np.ndarray
    scale: float

    def to_model(self, points: np.ndarray) -> np.ndarray:
        return (apply_transform(self.matrix, points) - self.centre) / self.scale

    def to_patient(self, points: np.ndarray) -> np.ndarray:
        return apply_transform(np.linalg.inv(self.matrix), points * self.scale + self.centre)


def register(prepared: PreparedKnee, mean_bone: Mesh, settings: FitSettings) -> ModelFrame:
    """Similarity ICP of the bone onto the mean bone; with ``scale_jointly`` False also centre and scale (model 231)."""
    matrix = similarity_icp(
        prepared.bone[0], *mean_bone, iterations=settings.icp_iterations, max_landmarks=settings.icp_landmarks
    )
    if settings.scale_jointly:
        return ModelFrame(matrix, np.zeros(3), 1.0)
    bone = apply_transform(matrix, prepared.bone[0])
    centre = bone.mean(axis=0)
    every = [bone] + ([apply_transform(matrix, prepared.cartilage[0])] if prepared.cartilage is not None else [])
    scale = float(max(np.linalg.norm(p - centre, axis=1).max() for p in every))
    return ModelFrame(matrix, centre, scale)


# --- 3. samples and targets ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitSamples:
    """Model-space ``points`` (N, 3), clamped SDF ``targets`` (N, n_objects), ``surface_id`` (N,) 0 bone/1 cartilage."""

    points: np.ndarray
    targets: np.ndarray
    surface_id: np.ndarray


def fitting_samples(bone: Mesh, cartilage: Mesh | None, n_objects: int, clamp: float) -> FitSamples:
    """Registered vertices with targets: 0 on their own surface, signed distance to the other surface (model space)."""
    bone_points = bone[0]
    if n_objects == 1:
        return FitSamples(bone_points, np.zeros((len(bone_points), 1)), np.zeros(len(bone_points), dtype=np.int64))
    if n_objects != 2 or cartilage is None:
        raise ValueError(f"a {n_objects}-object model needs a femoral cartilage surface")
    cart_points = cartilage[0]
    # Beyond the clamp only the sign matters, which spares exact searches for e.g. shaft vertices far from cartilage.
    bone_at_cart = MeshDistance(*bone).query(cart_points, max_distance=clamp).signed
    cart_at_bone = MeshDistance(*cartilage).query(bone_points, max_distance=clamp).signed
    targets = np.concatenate(
        [
            np.column_stack([np.zeros(len(bone_points)), cart_at_bone]),
            np.column_stack([bone_at_cart, np.zeros(len(cart_points))]),
        ]
    )
    surface_id = np.repeat([0, 1], [len(bone_points), len(cart_points)])
    return FitSamples(np.concatenate([bone_points, cart_points]), np.clip(targets, -clamp, clamp), surface_id)


# --- 4. latent optimisation ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatentFit:
    """``latent`` (latent_size,) float64, steps run, best per-step loss and the loss of every step."""

    latent: np.ndarray
    iterations: int
    best_loss: float
    losses: np.ndarray


def _subset_indices(groups: list[np.ndarray], n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """n_samples // n_surfaces random points per surface without replacement (all of them if fewer exist)."""
    per_surface = n_samples // len(groups)
    picked = [g if len(g) <= per_surface else rng.choice(g, per_surface, replace=False) for g in groups]
    return np.concatenate(picked)


def fit_latent(
    decoder: TriplanarDecoder,
    samples: FitSamples,
    settings: FitSettings,
    *,
    progress: ProgressFn | None = None,
) -> LatentFit:
    """Optimise a (1, latent_size) latent against ``samples`` with Adam; the decoder stays frozen.

    Deterministic for a given ``settings.seed`` on one device type (the start latent is drawn on the CPU so CPU and
    GPU runs start alike; CUDA's atomic adds in grid_sample's backward can still differ in the last bits).
    """
    device = next(decoder.parameters()).device
    points = torch.as_tensor(samples.points, dtype=torch.float32, device=device)
    targets = torch.as_tensor(samples.targets, dtype=torch.float32, device=device)
    rng = np.random.default_rng(settings.seed)
    groups = [np.flatnonzero(samples.surface_id == s) for s in np.unique(samples.surface_id)]
    start = torch.randn(1, decoder.latent_size, generator=torch.Generator().manual_seed(settings.seed))
    latent = (start * settings.latent_init_std).to(device).requires_grad_(True)
    optimiser = torch.optim.Adam([latent], lr=settings.lr)
    steps_per_update = max(settings.n_iterations // max(settings.n_lr_updates, 1), 1)
    best_loss, best_latent, stalled = np.inf, latent.detach().clone(), 0
    losses: list[float] = []
    for step in range(settings.n_iterations):
        for group in optimiser.param_groups:
            group["lr"] = settings.lr * settings.lr_update_factor ** -(step // steps_per_update)
        index = torch.as_tensor(_subset_indices(groups, settings.n_samples, rng), device=device)
        with decoder_precision(device, settings.precision):
            predicted = decoder(latent, points[index][None])[0].float()
        predicted = predicted.clamp(-settings.clamp_dist, settings.clamp_dist)
        loss = (predicted - targets[index]).abs().sum(dim=1).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if losses[-1] < best_loss:  # upstream quirk kept: the copy is taken after this step's update
            best_loss, best_latent, stalled = losses[-1], latent.detach().clone(), 0
        else:
            stalled += 1
            if stalled > settings.patience:
                break
        if progress is not None and step % 50 == 0:
            progress(step / settings.n_iterations, f"shape model: step {step}, loss {losses[-1]:.5f}")
    latent_out = best_latent[0].cpu().numpy().astype(np.float64)
    return LatentFit(latent_out, len(losses), float(best_loss), np.asarray(losses))


def decoder_precision(device: torch.device, precision: str):
    """Autocast context for the decoder: bf16 when asked (CPU or CUDA), otherwise nothing changes."""
    enabled = precision == "bf16" and device.type in ("cpu", "cuda")
    return torch.autocast(device.type if enabled else "cpu", dtype=torch.bfloat16, enabled=enabled)


# --- 5. reconstruction --------------------------------------------------------------------------------------------


def reconstruct(
    decoder: TriplanarDecoder, latent: np.ndarray, frame: ModelFrame, settings: FitSettings
) -> list[Mesh | None]:
    """Surfaces of ``latent`` (one per object, None without a zero crossing) in patient mm."""
    device = next(decoder.parameters()).device
    z = torch.as_tensor(latent, dtype=torch.float32, device=device)[None]
    with decoder_precision(device, settings.precision):
        surfaces = extract_surfaces(
            decoder,
            z,
            resolution=settings.resolution,
            seed=settings.seed,
            chunk=settings.chunk_points,
            narrow_band=settings.narrow_band,
        )
    return [None if s is None else (frame.to_patient(s[0]), s[1]) for s in surfaces]


@dataclass(frozen=True)
class KneeFit:
    """Everything one fit produced. ``assd_mm`` is per object (bone, cartilage), None where it cannot be measured."""

    prepared: PreparedKnee
    frame: ModelFrame
    latent: LatentFit
    surfaces: list[Mesh | None]
    assd_mm: list[float | None]
    timings_s: dict[str, float]


def fit_knee(
    model: ShapeModel, prepared: PreparedKnee, settings: FitSettings, *, progress: ProgressFn | None = None
) -> KneeFit:
    """Register, fit, reconstruct and measure one prepared knee with a loaded model."""
    report = progress or (lambda fraction, message: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    report(0.0, "shape model: registering to the mean shape")
    frame = register(prepared, model.mean_bone, settings)
    timings["registration"], clock = time.perf_counter() - clock, time.perf_counter()
    bone = (frame.to_model(prepared.bone[0]), prepared.bone[1])
    cartilage = None if prepared.cartilage is None else (frame.to_model(prepared.cartilage[0]), prepared.cartilage[1])
    samples = fitting_samples(bone, cartilage, model.n_objects, settings.clamp_dist)
    timings["targets"], clock = time.perf_counter() - clock, time.perf_counter()
    fitted = fit_latent(model.decoder, samples, settings, progress=lambda f, m: report(0.05 + 0.8 * f, m))
    timings["fitting"], clock = time.perf_counter() - clock, time.perf_counter()
    report(0.85, "shape model: reconstructing surfaces")
    surfaces = reconstruct(model.decoder, fitted.latent, frame, settings)
    timings["meshing"], clock = time.perf_counter() - clock, time.perf_counter()
    inputs = [prepared.bone, prepared.cartilage][: model.n_objects]
    distances = [None if s is None or m is None else assd(*s, *m) for s, m in zip(surfaces, inputs, strict=True)]
    timings["assd"] = time.perf_counter() - clock
    logger.info(
        "shape model %s: %d steps, loss %.5f, ASSD %s mm, %s",
        model.model_id,
        fitted.iterations,
        fitted.best_loss,
        distances,
        {k: round(v, 2) for k, v in timings.items()},
    )
    return KneeFit(prepared, frame, fitted, surfaces, distances, timings)
