"""A loaded shape model: decoder + its config + mean shape, built once and reused for every knee.

The published ShapeMedKnee folders (HF ``aagatti/ShapeMedKnee``, gated) are looked up by model id; see
``files.find_model_files`` for the accepted layouts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import KneePipelineError

from .decoder import TriplanarDecoder, load_decoder
from .files import find_model_files
from .meshing import extract_surfaces

logger = logging.getLogger(__name__)


class ShapeModelError(KneePipelineError):
    """The shape model cannot produce a result for this input (e.g. its mean shape has no surface)."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class ShapeModel:
    """A ready-to-fit NSM: frozen decoder on ``device``, the raw config dict, and the mean bone surface.

    Construct with ``from_folder`` (published weights) or ``from_decoder`` (tests, benchmarks).
    """

    def __init__(
        self,
        decoder: TriplanarDecoder,
        config: Mapping,
        *,
        model_id: str,
        device: torch.device,
        mean_bone: tuple[np.ndarray, np.ndarray],
    ) -> None:
        self.decoder = decoder
        self.config = dict(config)
        self.model_id = model_id
        self.device = device
        self.mean_bone = mean_bone  # (points (N, 3), faces (M, 3)) in model space

    @classmethod
    def from_folder(
        cls, model_dir: Path, model_id: str, *, device: str | torch.device | None = None, mean_resolution: int = 128
    ) -> ShapeModel:
        """Load published weights (strict) and decode the mean shape. Raises FileNotFoundError if files are missing."""
        files = find_model_files(model_dir, model_id)
        if files is None:
            raise FileNotFoundError(f"no config/checkpoint for shape model {model_id} in {model_dir}")
        config = json.loads(files[0].read_text())
        device = torch.device(device) if device is not None else default_device()
        decoder = load_decoder(files[1], config, device=device)
        logger.info("loaded shape model %s from %s on %s", model_id, files[1], device)
        return cls.from_decoder(decoder, config, model_id=model_id, device=device, mean_resolution=mean_resolution)

    @classmethod
    def from_decoder(
        cls,
        decoder: TriplanarDecoder,
        config: Mapping,
        *,
        model_id: str,
        device: str | torch.device | None = None,
        mean_resolution: int = 128,
    ) -> ShapeModel:
        """Wrap an in-memory decoder (frozen and moved to ``device`` here) and decode its mean shape."""
        device = torch.device(device) if device is not None else default_device()
        decoder = decoder.to(device).eval().requires_grad_(False)
        mean_bone = mean_shape(decoder, resolution=mean_resolution)
        return cls(decoder, config, model_id=model_id, device=device, mean_bone=mean_bone)

    @property
    def n_objects(self) -> int:
        return self.decoder.n_objects


def mean_shape(decoder: TriplanarDecoder, *, resolution: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Bone surface (object 0) of the zero latent in model space; ShapeModelError if it has no surface.

    Upstream silently returns a zero latent and NaN distances in that case; an error is more honest.
    """
    device = next(decoder.parameters()).device
    zero = torch.zeros(1, decoder.latent_size, device=device)
    bone = extract_surfaces(decoder, zero, resolution=resolution)[0]
    if bone is None:
        raise ShapeModelError("the shape model's mean shape has no bone surface (no zero crossing of its SDF)")
    return bone
