"""The Goyal models' input and output resampling and normalisation, as upstream does them.

Upstream resizes the whole reformatted volume with one ``skimage.transform.resize`` call (order 3; the slice axis
keeps its length) and whitens it with ``(x - mean) / (std + 1e-8)`` over the volume; the predicted labels go back
with ``resize(..., order=0)``. A tensor-product spline evaluated at the slices' own positions is the 2-D spline of
each slice, and the anti-aliasing blur has zero width along the slice axis, so resizing slice by slice gives the
same values, with two details kept: skimage clips the result to the input's range, which is the *volume's* range
upstream (not each slice's), and skimage decides anti-aliasing from the shapes, which is the same either way.
"""

from __future__ import annotations

import numpy as np

WHITEN_EPS = 1e-8


def model_input_image(volume) -> np.ndarray:
    """The image the models were trained on: the root-sum-of-squares of the echoes, float32 (k, j, i).

    A multi-echo DICOM series is read as that sum already (``pipeline.io.dicom``; its echoes stay on
    ``volume.source``); a volume that carries echoes but not their sum (built by hand) gets it here.
    """
    from ...io.dicom import root_sum_of_squares

    echoes = getattr(volume.source, "echoes", ()) or ()
    if len(echoes) > 1 and volume.meta.get("combined") is None:
        return root_sum_of_squares([echo.volume.array for echo in echoes])
    return np.asarray(volume.array, dtype=np.float32)


def resize_slices(stack: np.ndarray, size: tuple[int, int], *, order: int) -> np.ndarray:
    """Every slice of ``stack`` (n, rows, cols) resized to ``size`` with skimage's spline of ``order``.

    Order 0 (labels) keeps the dtype; otherwise float32, clipped to the whole stack's value range as upstream.
    """
    from skimage.transform import resize

    n = stack.shape[0]
    if tuple(stack.shape[1:]) == tuple(size):
        return stack.astype(np.float32) if order else stack.copy()
    dtype = stack.dtype if order == 0 else np.float32
    out = np.empty((n, *size), dtype=dtype)
    for s in range(n):
        out[s] = resize(stack[s], size, order=order, clip=order == 0, preserve_range=order == 0)
    if order:
        np.clip(out, float(stack.min()), float(stack.max()), out=out)
    return out


def whiten(x: np.ndarray) -> np.ndarray:
    """(x - mean) / (std + 1e-8) over the whole array (float64 statistics), as float32."""
    mean = float(np.mean(x, dtype=np.float64))
    std = float(np.std(x, dtype=np.float64))
    return ((x - mean) / (std + WHITEN_EPS)).astype(np.float32)
