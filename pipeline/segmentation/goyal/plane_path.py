"""One Goyal model on one volume: reformat to its plane, resize, whiten, predict in batches, argmax, resize back.

Everything but the network call is numpy/scikit-image here; the network comes in as ``run_batch``, a callable from
a float32 batch laid out as the model wants it (``ModelIO``) to its class probabilities, so the same path serves
PyTorch eager, ONNX Runtime, OpenVINO and CUDA.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...errors import WeightsUnavailableError
from ...progress import ProgressFn, no_progress
from .cleanup import N_NATIVE
from .planes import PlaneLayout, from_plane, to_plane
from .preprocess import resize_slices, whiten

BatchFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ModelIO:
    """How a model takes its slices: size (rows, columns) and whether channels come first (upstream: yes)."""

    size: tuple[int, int]
    channels_first: bool

    @classmethod
    def from_input_shape(cls, shape: tuple, layout: PlaneLayout, name: str) -> ModelIO:
        """From the saved input shape without the batch axis: (1, H, W) or (H, W, 1); free sizes take the plane's
        published size."""
        if len(shape) != 3 or (shape[0] != 1 and shape[-1] != 1):
            raise WeightsUnavailableError(
                f"{name}: the model's input shape {list(shape)} is not one image channel (1, H, W) or (H, W, 1); "
                "it is not a Goyal 2-D U-Net."
            )
        channels_first = shape[0] == 1  # (1, H, 1) and (1, 1, 1) read as upstream's channels-first
        spatial = shape[1:] if channels_first else shape[:2]
        size = tuple(int(s) if s else d for s, d in zip(spatial, layout.default_size, strict=True))
        return cls(size, channels_first)  # type: ignore[arg-type]

    def batch(self, slices: np.ndarray) -> np.ndarray:
        """(n, H, W) -> the model's (n, 1, H, W) or (n, H, W, 1)."""
        return np.ascontiguousarray(slices[:, None] if self.channels_first else slices[..., None])

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        """Argmax over the class axis -> (n, H, W) uint8. The class axis follows the input's layout (upstream takes
        axis 1), or is the other end when only that one has the 10 classes (a model that permutes its output)."""
        n_classes = N_NATIVE + 1
        axis = 1 if self.channels_first else -1
        if probabilities.ndim != 4 or probabilities.shape[axis] != n_classes:
            other = -1 if axis == 1 else 1
            if probabilities.ndim != 4 or probabilities.shape[other] != n_classes:
                raise WeightsUnavailableError(
                    f"The model outputs shape {list(probabilities.shape)}; a Goyal knee model outputs {n_classes} "
                    "classes per pixel (background and the nine structures in DOSMA's order)."
                )
            axis = other
        return np.argmax(probabilities, axis=axis).astype(np.uint8)


@dataclass(frozen=True)
class PlaneResult:
    """Native labels (uint8, the volume's array order) and facts for provenance."""

    labels: np.ndarray
    slices: int
    batches: int
    model_size: tuple[int, int]


def prepare_slices(image: np.ndarray, direction: np.ndarray, layout: PlaneLayout, size: tuple[int, int]):
    """The whitened model-size stack of ``layout``'s slices, and the stack's original (rows, columns)."""
    stack = to_plane(image, direction, layout)
    return whiten(resize_slices(stack, size, order=3)), tuple(stack.shape[1:])


def segment_in_plane(
    image: np.ndarray,
    direction: np.ndarray,
    layout: PlaneLayout,
    io: ModelIO,
    run_batch: BatchFn,
    *,
    batch_size: int,
    progress: ProgressFn | None = None,
) -> PlaneResult:
    """Native labels of ``image`` (float32, the Volume's (k, j, i) order) from one plane's model.

    ``progress(fraction, message)`` is called after every batch; it may raise to cancel (nothing is kept).
    """
    report = progress or no_progress
    x, original = prepare_slices(image, direction, layout, io.size)
    n = len(x)
    labels = np.empty((n, *io.size), dtype=np.uint8)
    batches = 0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        labels[start:stop] = io.labels(run_batch(io.batch(x[start:stop])))
        batches += 1
        report(stop / n, f"{layout.name}: slices {stop}/{n}")
    back = resize_slices(labels, original, order=0)
    return PlaneResult(from_plane(back, direction, layout), n, batches, io.size)
