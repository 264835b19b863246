"""Triplanar neural-shape-model decoder, state_dict-compatible with the published ShapeMedKnee checkpoints.

Written from the description in ``docs/model-formats.md`` §1.2-1.7 (the reference NSM code is not used). The network
maps a latent z (B, latent_size) and query points p (B, N, 3) in model space to signed distances (B, N, n_objects):

1. plane generator (``vae_decoder``): Linear -> reshape -> ConvTranspose2d/LayerNorm stages -> Conv2d + tanh, giving
   three feature planes (xz, yz, xy) of ``sdf_latent_size`` channels each;
2. triplanar sampling: bilinear features of each plane at the projected point, summed;
3. SDF MLP (``sdf_decoder``): weight-normalised Linear layers on [features, raw xyz], ReLU, final tanh.

Output columns: 0 = femur bone, 1 = femoral cartilage (2-object models); negative inside, model-space units.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

#: Added to ``1 + padding`` before dividing query points (upstream constant; part of the trained scale).
_PADDING_EPS = 1e-5


@dataclass(frozen=True)
class TriplanarConfig:
    """The architecture keys of a ``model_params_config.json``; every other key of that file is ignored."""

    latent_size: int = 512
    objects_per_decoder: int = 2
    conv_hidden_dims: tuple[int, ...] = (512, 512, 512, 512, 512)
    conv_deep_image_size: int = 2
    conv_norm: bool = True
    conv_norm_type: str = "layer"
    conv_start_with_mlp: bool = True
    sdf_latent_size: int = 128
    sdf_hidden_dims: tuple[int, ...] = (512, 512, 512)
    weight_norm: bool = True
    activation: str = "relu"
    final_activation: str = "tanh"
    padding: float = 0.1  # absent from the published configs, which means 0.1 (model-formats §1.4)

    @classmethod
    def from_dict(cls, config: Mapping) -> TriplanarConfig:
        """Pick and validate the architecture keys; raise ValueError for variants this module does not implement."""
        _check_supported(config)
        defaults = cls()
        return cls(
            latent_size=int(config.get("latent_size", defaults.latent_size)),
            objects_per_decoder=int(config.get("objects_per_decoder", defaults.objects_per_decoder)),
            conv_hidden_dims=tuple(int(c) for c in config.get("conv_hidden_dims", defaults.conv_hidden_dims)),
            conv_deep_image_size=int(config.get("conv_deep_image_size", defaults.conv_deep_image_size)),
            conv_norm=bool(config.get("conv_norm", defaults.conv_norm)),
            conv_norm_type=str(config.get("conv_norm_type", defaults.conv_norm_type)),
            conv_start_with_mlp=bool(config.get("conv_start_with_mlp", defaults.conv_start_with_mlp)),
            sdf_latent_size=int(config.get("sdf_latent_size", defaults.sdf_latent_size)),
            sdf_hidden_dims=tuple(int(c) for c in config.get("sdf_hidden_dims", defaults.sdf_hidden_dims)),
            weight_norm=bool(config.get("weight_norm", defaults.weight_norm)),
            activation=str(config.get("activation", defaults.activation)),
            final_activation=str(config.get("final_activation", defaults.final_activation)),
            padding=float(config.get("padding", defaults.padding)),
        )

    @property
    def plane_resolution(self) -> int:
        """Side of each feature plane in pixels (64 for the published models)."""
        return self.conv_deep_image_size * 2 ** len(self.conv_hidden_dims)


def _check_supported(config: Mapping) -> None:
    unsupported = {
        "model_type": ("triplanar", config.get("model_type", "triplanar")),
        "sum_conv_output_features": (True, bool(config.get("sum_conv_output_features", True))),
        "conv_pred_sdf": (False, bool(config.get("conv_pred_sdf", False))),
        "conv_norm_type": ("layer or batch", config.get("conv_norm_type", "layer")),
        "activation": ("relu", config.get("activation", "relu")),
        "final_activation": ("tanh or none", config.get("final_activation", "tanh")),
    }
    allowed: dict[str, set] = {"conv_norm_type": {"layer", "batch"}, "final_activation": {"tanh", "none", None}}
    for key, (expected, value) in unsupported.items():
        ok = value in allowed[key] if key in allowed else value == expected
        if not ok:
            raise ValueError(f"model config {key}={value!r} is not supported (expected {expected})")


class WeightNormLinear(nn.Module):
    """Linear layer with weight normalisation along dim 0: W = g * v / ||v|| (norm per output row).

    Parameter names ``weight_g`` (out, 1), ``weight_v`` (out, in) and ``bias`` (out) match the legacy
    ``torch.nn.utils.weight_norm`` layout of the published checkpoints.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        init = nn.Linear(in_features, out_features)  # borrow PyTorch's default initialisation
        self.bias = nn.Parameter(init.bias.detach().clone())
        self.weight_g = nn.Parameter(init.weight.detach().norm(dim=1, keepdim=True))
        self.weight_v = nn.Parameter(init.weight.detach().clone())

    def weight(self) -> torch.Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)


class PlaneGenerator(nn.Module):
    """Latent (B, latent_size) -> feature planes (B, 3 * sdf_latent_size, R, R), R = ``plane_resolution``.

    The conv stack is registered twice, as ``layers`` and ``decoder`` (the same modules), because the published
    state_dicts carry both key sets; ``decoder`` is registered last so it wins if a checkpoint's copies disagree.
    There is deliberately no nonlinearity between the conv stages: the published weights were trained that way.
    """

    def __init__(self, cfg: TriplanarConfig) -> None:
        super().__init__()
        s0 = cfg.conv_deep_image_size
        self._start_size = s0
        if cfg.conv_start_with_mlp:
            self._start_channels = cfg.conv_hidden_dims[0]
            self.fc: nn.Linear | None = nn.Linear(cfg.latent_size, self._start_channels * s0 * s0)
        else:
            if cfg.latent_size % (s0 * s0):
                raise ValueError(f"latent_size {cfg.latent_size} cannot be reshaped to (C, {s0}, {s0})")
            self._start_channels = cfg.latent_size // (s0 * s0)
            self.fc = None
        stages: list[nn.Module] = []
        channels, size = self._start_channels, s0
        for out_channels in cfg.conv_hidden_dims:
            stages.append(nn.ConvTranspose2d(channels, out_channels, 3, stride=2, padding=1, output_padding=1))
            size *= 2
            if cfg.conv_norm:
                layer_norm = cfg.conv_norm_type == "layer"  # one mean/variance over (C, H, W) per sample
                stages.append(nn.LayerNorm([out_channels, size, size]) if layer_norm else nn.BatchNorm2d(out_channels))
            channels = out_channels
        stages.append(nn.Sequential(nn.Conv2d(channels, 3 * cfg.sdf_latent_size, 3, padding=1), nn.Tanh()))
        stack = nn.Sequential(*stages)
        self.layers = stack
        self.decoder = stack  # alias: same modules, second key set

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = self.fc(latent) if self.fc is not None else latent
        x = x.view(latent.shape[0], self._start_channels, self._start_size, self._start_size)  # channel-major
        return self.decoder(x)


class SdfMlp(nn.Module):
    """[plane features (F), raw xyz (3)] -> n_objects signed distances; ReLU between layers, final tanh."""

    def __init__(self, cfg: TriplanarConfig) -> None:
        super().__init__()
        dims = [cfg.sdf_latent_size + 3, *cfg.sdf_hidden_dims, cfg.objects_per_decoder]
        linear = WeightNormLinear if cfg.weight_norm else nn.Linear
        self.layers = nn.ModuleList(linear(a, b) for a, b in itertools.pairwise(dims))
        self._final_tanh = cfg.final_activation == "tanh"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.relu(x)
        return torch.tanh(x) if self._final_tanh else x


class TriplanarDecoder(nn.Module):
    """The ShapeMedKnee NSM decoder; ``state_dict`` keys ``vae_decoder.*`` and ``sdf_decoder.*`` as published."""

    def __init__(self, cfg: TriplanarConfig) -> None:
        super().__init__()
        self.config = cfg
        self.vae_decoder = PlaneGenerator(cfg)
        self.sdf_decoder = SdfMlp(cfg)
        self._scale = 1.0 + cfg.padding + _PADDING_EPS

    @classmethod
    def from_config(cls, config: Mapping) -> TriplanarDecoder:
        """Build (randomly initialised) from a ``model_params_config.json``-style dict."""
        return cls(TriplanarConfig.from_dict(config))

    @property
    def n_objects(self) -> int:
        return self.config.objects_per_decoder

    @property
    def latent_size(self) -> int:
        return self.config.latent_size

    def planes(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent (B, latent_size) -> feature planes (B, 3 * sdf_latent_size, R, R); channels xz | yz | xy."""
        return self.vae_decoder(latent)

    def decode_points(self, planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Planes (B, 3F, R, R) and model-space points (B, N, 3) -> SDF (B, N, n_objects)."""
        features = sample_triplanar(planes, points, self._scale)
        return self.sdf_decoder(torch.cat([features, points], dim=-1))  # raw xyz, not the scaled coordinates

    def forward(self, latent: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Latent (B, latent_size), points (B, N, 3) -> SDF (B, N, n_objects)."""
        return self.decode_points(self.planes(latent), points)


def sample_triplanar(planes: torch.Tensor, points: torch.Tensor, scale: float) -> torch.Tensor:
    """Sum of bilinear plane features at each point: (B, 3F, R, R), (B, N, 3) -> (B, N, F).

    u = clamp(p / scale, -1, 1); plane coordinates (width, height) are xz -> (x, z), yz -> (y, z), xy -> (x, y);
    ``align_corners=True`` so -1 and +1 hit the first and last pixel centres, border padding.
    """
    n_features = planes.shape[1] // 3
    u = (points / scale).clamp(-1.0, 1.0)
    total = None
    for index, (a, b) in enumerate(((0, 2), (1, 2), (0, 1))):
        grid = u[..., [a, b]].unsqueeze(1)  # (B, 1, N, 2): grid_sample's (x=width, y=height)
        plane = planes[:, index * n_features : (index + 1) * n_features]
        sampled = F.grid_sample(plane, grid, mode="bilinear", padding_mode="border", align_corners=True)
        sampled = sampled[:, :, 0].transpose(1, 2)  # (B, N, F)
        total = sampled if total is None else total + sampled
    assert total is not None  # three planes were sampled
    return total


def parameter_counts(module: nn.Module) -> dict[str, int]:
    """Unique trainable parameters, state_dict entries and state_dict elements (aliased tensors counted twice)."""
    state = module.state_dict()
    return {
        "unique_parameters": sum(p.numel() for p in module.parameters()),
        "state_dict_entries": len(state),
        "state_dict_elements": sum(t.numel() for t in state.values()),
    }


def normalise_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the key variants seen upstream onto this module's key set.

    - ``module.`` prefixes (DataParallel) are dropped;
    - ``parametrizations.weight.original0/1`` (newer weight-norm API) become ``weight_g`` / ``weight_v``;
    - a state_dict holding only ``vae_decoder.decoder.*`` gets the ``vae_decoder.layers.*`` aliases; where both are
      present and disagree, ``decoder.*`` wins (as upstream).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        out[key] = value
    for key in [k for k in out if k.startswith("vae_decoder.decoder.")]:
        alias = "vae_decoder.layers." + key.removeprefix("vae_decoder.decoder.")
        if alias in out and not torch.equal(out[alias], out[key]):
            logger.warning("checkpoint copies %s and %s differ; using the decoder.* copy", alias, key)
        out[alias] = out[key]
    return out


def load_decoder(checkpoint: Path, config: Mapping, *, device: str | torch.device = "cpu") -> TriplanarDecoder:
    """Build the decoder from ``config`` and strict-load ``checkpoint`` (``{"model": state_dict, ...}`` or a bare one).

    The returned model is in eval mode with ``requires_grad`` off: fitting optimises the latent only.
    Restricted unpickling (``weights_only=True``) is used; the published files need nothing more.
    """
    decoder = TriplanarDecoder.from_config(config)
    payload = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
    state = payload["model"] if isinstance(payload, Mapping) and "model" in payload else payload
    decoder.load_state_dict(normalise_state_dict(state), strict=True)
    return decoder.to(device).eval().requires_grad_(False)
