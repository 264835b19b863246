"""Synthetic shape models for the NSM tests: the published configurations and a tiny trained decoder.

The tiny decoder has the published architecture at toy size (latent 4, 16x16 planes) and is trained for a few
seconds on an analytic two-object family (a "femur": ellipsoid + condyle-like bump, and a "cartilage" shell over its
lower part), so a latent maps to a closed, latent-dependent shape, as with the real model. Latents live at the real
models' scale (components ~0.1), which the published learning-rate schedule can reach.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.shape.decoder import TriplanarDecoder

#: The 647 configuration's architecture keys, plus a few ignored keys as in the real file (551: objects 1).
PUBLISHED_CONFIG_647: dict = {
    "latent_size": 512,
    "objects_per_decoder": 2,
    "conv_hidden_dims": [512, 512, 512, 512, 512],
    "conv_deep_image_size": 2,
    "conv_norm": True,
    "conv_norm_type": "layer",
    "conv_start_with_mlp": True,
    "sdf_latent_size": 128,
    "sdf_hidden_dims": [512, 512, 512],
    "weight_norm": True,
    "activation": "relu",
    "final_activation": "tanh",
    "dropout_prob": 0.0,
    "sum_conv_output_features": True,
    "conv_pred_sdf": False,
    "model_type": "triplanar",
    "num_iterations_recon": 2000,
    "lr_recon": 0.005,
    "lr_update_factor_recon": 1.1,
    "n_lr_updates_recon": 100,
    "clamp_dist_recon": 0.1,
    "convergence_type_recon": "recon_loss",
    "convergence_patience_recon": 50,
    "n_samples_latent_recon": 20000,
    "fix_mesh_recon": False,
    "scale_jointly": True,
    "l2reg_recon": False,
    "get_rand_pts_recon": False,
    "layer_dimensions": [512, 512, 512, 512, 512, 512, 512, 512],  # DeepSDF leftover, ignored
    "seed": 52122,
}
PUBLISHED_CONFIG_551: dict = {**PUBLISHED_CONFIG_647, "objects_per_decoder": 1}

TINY_CONFIG: dict = {
    **PUBLISHED_CONFIG_647,
    "latent_size": 4,
    "conv_hidden_dims": [16, 16],
    "conv_deep_image_size": 4,  # -> 16x16 planes
    "sdf_latent_size": 16,
    "sdf_hidden_dims": [32, 32],
}
LATENT_SCALE = 0.15  # latent = LATENT_SCALE * shape parameters (parameters ~ N(0, 1))
CARTILAGE_THICKNESS = 0.12  # model units


def analytic_sdf(points: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """Approximate SDF of the family: points (B, N, 3), latent (B, 4) -> (B, N, 2) [bone, cartilage].

    Parameters p = latent / LATENT_SCALE: p0, p1 change the ellipsoid's aspect ratios at constant volume (so the
    similarity ICP cannot absorb them), p2 moves the bump along y, p3 changes the bump radius.
    """
    p = latent / LATENT_SCALE
    axes = torch.tensor([0.55, 0.40, 0.45]) * torch.exp(0.15 * torch.stack([p[:, 0], p[:, 1], -p[:, 0] - p[:, 1]], 1))
    axes = axes[:, None, :]
    ellipsoid = (torch.linalg.norm(points / axes, dim=-1) - 1.0) * axes.min(dim=-1).values
    centre = torch.stack([torch.full_like(p[:, 2], 0.3), 0.08 * p[:, 2], torch.full_like(p[:, 2], -0.3)], 1)
    radius = (0.22 * torch.exp(0.15 * p[:, 3]))[:, None]
    bump = torch.linalg.norm(points - centre[:, None, :], dim=-1) - radius
    bone = torch.minimum(ellipsoid, bump)
    half = CARTILAGE_THICKNESS / 2
    shell = (bone - half).abs() - half
    cartilage = torch.maximum(shell, points[..., 2] + 0.1)  # only over the lower part, like femoral cartilage
    return torch.stack([bone, cartilage], dim=-1)


def _training_points(n: int, generator: torch.Generator) -> torch.Tensor:
    """Half uniform in [-1, 1]^3, half concentrated around the shapes' region (|p| < 0.7)."""
    uniform = torch.rand(n // 2, 3, generator=generator) * 2 - 1
    near = torch.randn(n - n // 2, 3, generator=generator) * 0.35
    return torch.cat([uniform, near]).clamp(-1, 1)


def train_tiny_decoder(*, steps: int = 600, seed: int = 0) -> TriplanarDecoder:
    """A tiny TriplanarDecoder fitted to ``analytic_sdf`` over random latents (deterministic for a seed)."""
    with torch.random.fork_rng():  # seeded weight init without disturbing other tests' global RNG state
        torch.manual_seed(seed)
        decoder = TriplanarDecoder.from_config(TINY_CONFIG)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    for _ in range(steps):
        latent = (torch.randn(8, 4, generator=generator) * LATENT_SCALE).clamp(-2.5 * LATENT_SCALE, 2.5 * LATENT_SCALE)
        points = torch.stack([_training_points(512, generator) for _ in range(8)])
        target = analytic_sdf(points, latent).clamp(-0.2, 0.2)
        loss = (decoder(latent, points) - target).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    return decoder.eval().requires_grad_(False)


def similarity(scale: float, angles_deg: tuple[float, float, float], translation: tuple[float, float, float]):
    """4x4 similarity: rotation about x, y, z (degrees, in that order), isotropic scale, then translation."""
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = scale * rz @ ry @ rx
    matrix[:3, 3] = translation
    return matrix


def decoded_surfaces(decoder: TriplanarDecoder, latent: np.ndarray, *, resolution: int = 64) -> list:
    """Model-space (points, faces) per object of ``latent`` (latent_size,)."""
    from pipeline.shape.meshing import extract_surfaces

    z = torch.as_tensor(np.asarray(latent), dtype=torch.float32)[None]
    return extract_surfaces(decoder, z, resolution=resolution)


def write_model_folder(root, decoder: TriplanarDecoder, config: dict, *, model_id: str = "647", epoch: int = 2000):
    """A folder in the published layout: ``<id>_nsm_femur_v0.0.1/{model_params_config.json, model/<epoch>.pth}``."""
    import json

    folder = root / f"{model_id}_nsm_femur_v0.0.1"
    (folder / "model").mkdir(parents=True)
    (folder / "model_params_config.json").write_text(json.dumps(config))
    torch.save({"epoch": epoch, "model": decoder.state_dict(), "optimizer": "None"}, folder / "model" / f"{epoch}.pth")
    return folder


def write_bscore_folder(folder, vector: np.ndarray, mean_healthy: float, std_healthy: float):
    """A BScore folder with ``model.json`` as published (three keys)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    model = {"bscore_vector": [float(v) for v in vector], "mean_healthy": mean_healthy, "std_healthy": std_healthy}
    (folder / "model.json").write_text(json.dumps(model))
    return folder
