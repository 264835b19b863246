"""One Goyal .h5 file loaded for inference: the PyTorch network, how it takes slices, and what runs it.

The runner comes from the project's backends (``segmentation.backends``): PyTorch eager, or on a CPU the network
exported once to ONNX and run by ONNX Runtime or OpenVINO ('auto' measures which is fastest and agrees with eager
fp32 on a knee-like batch); on CUDA, PyTorch. A graph runner was exported for one batch shape, so the last, shorter
batch of a volume is padded with empty slices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...config import InferenceOptions
from ...errors import WeightsUnavailableError
from .keras_h5 import KerasFormatError
from .plane_path import ModelIO, prepare_slices
from .planes import PLANES, PlaneLayout

logger = logging.getLogger(__name__)

#: Slices per network call: on a CPU memory grows with it and speed does not; a GPU wants more.
BATCH_SIZE = {"cpu": 4, "cuda": 16, "mps": 8}


@dataclass
class PlaneModel:
    """A loaded model of one plane. ``run_batch`` maps a float32 batch to class probabilities (numpy)."""

    layout: PlaneLayout
    io: ModelIO
    file: Path
    sha256: str
    network: Any
    batch_size: int
    device: Any
    keras: dict = field(default_factory=dict)
    backend: dict = field(default_factory=dict)
    runner: Any = None

    def run_batch(self, batch: np.ndarray) -> np.ndarray:
        import torch

        n = len(batch)
        shape = getattr(self.runner, "input_shape", None)
        if shape is not None and n < shape[0]:  # an exported graph takes whole batches only
            batch = np.concatenate([batch, np.zeros((shape[0] - n, *batch.shape[1:]), dtype=batch.dtype)])
        with torch.inference_mode():
            out = self.runner(torch.from_numpy(batch).to(self.device))
        return out[:n].float().cpu().numpy()

    def describe(self) -> dict:
        return {
            "plane": self.layout.name,
            "file": self.file.name,
            "sha256": self.sha256,
            "model_input": [1, *self.io.size] if self.io.channels_first else [*self.io.size, 1],
            "channels_first": self.io.channels_first,
            "batch_size": self.batch_size,
            "keras": self.keras,
            "inference_backend": self.backend,
        }


def load_plane_model(path: Path, plane: str, options: InferenceOptions, device, *, what_to_do: str = "") -> PlaneModel:
    """Read ``path`` (Keras full-model .h5), build its PyTorch network and attach the backend ``options`` ask for.

    Raises:
        WeightsUnavailableError: missing, unreadable or unsupported file (the message says what to do).
    """
    from ...weights import sha256_file
    from .keras_h5 import read_keras_h5
    from .keras_torch import KerasNetwork

    if not path.is_file():
        raise WeightsUnavailableError(f"Model file {path} does not exist. {what_to_do}".strip())
    layout = PLANES[plane]
    try:
        model = read_keras_h5(path)
        network = KerasNetwork(model)
    except KerasFormatError as exc:
        raise WeightsUnavailableError(f"{exc} {what_to_do}".strip()) from exc
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise WeightsUnavailableError(f"{path.name}: a Goyal model has one input and one output. {what_to_do}")
    io = ModelIO.from_input_shape(model.input_shapes[0], layout, path.name)
    keras = {
        "keras_version": model.versions.get("keras_version"),
        "backend": model.versions.get("backend"),
        "config_dialect": model.dialect,
        "parameters": model.parameter_count,
        "layers": model.layer_types(),
    }
    del model  # the numpy copies of the weights; the network holds its own
    network.to(device)
    batch_size = BATCH_SIZE.get(device.type, 4)
    plane_model = PlaneModel(layout, io, path, sha256_file(path), network, batch_size, device, keras)
    attach_runner(plane_model, options)
    return plane_model


def attach_runner(model: PlaneModel, options: InferenceOptions) -> None:
    """Give ``model`` the backend ``options`` ask for (see ``segmentation.backends.select``)."""
    from ..backends import NetworkSpec, load_runner

    shape = (model.batch_size, *model.io.batch(np.zeros((1, *model.io.size), np.float32)).shape[1:])
    spec = NetworkSpec(
        network=model.network,
        configuration=f"goyal-{model.layout.name}",
        checkpoint=model.file,
        checkpoint_sha256=model.sha256,
        input_shape=tuple(shape),
        device=model.device,
    )
    loaded = load_runner(
        spec, backend=options.backend, precision=options.precision, make_patch=lambda: knee_batch(model, shape[0])
    )
    model.runner, model.backend = loaded.runner, loaded.info


def knee_batch(model: PlaneModel, n: int) -> np.ndarray:
    """The central ``n`` slices of a synthetic knee through this model's preprocessing ('auto' compares on it)."""
    from ...synthetic import PhantomSpec, make_phantom, render_mr

    image = render_mr(make_phantom(PhantomSpec(spacing=(0.7, 0.7, 0.7))).labels, seed=0)  # slices are resized anyway
    x, _ = prepare_slices(image.array.astype(np.float32), image.direction, model.layout, model.io.size)
    start = max(len(x) // 2 - n // 2, 0)
    picked = x[start : start + n]
    if len(picked) < n:
        picked = np.concatenate([picked, np.zeros((n - len(picked), *picked.shape[1:]), np.float32)])
    return model.io.batch(picked)
