"""The knee-like patch on which 'auto' compares backends: a synthetic knee through the model's own preprocessing.

A trained network on a knee-like input gives real structures to compare (Dice per structure), unlike noise. The
phantom (``pipeline.synthetic``) is rendered at the model's working spacing, preprocessed by nnU-Net's preprocessor
for this configuration (transpose, crop, normalisation, resampling) and cut to one patch around its centre. A
cascade's second stage also takes one-hot channels of the first stage's labels; they are left empty here.
"""

from __future__ import annotations

import numpy as np


def knee_patch(predictor, input_shape: tuple[int, ...]) -> np.ndarray:
    """float32 array of ``input_shape`` (1, C, *patch) for ``predictor`` (a loaded nnUNetPredictor)."""
    from ..synthetic import PhantomSpec, make_phantom, render_mr

    plans, configuration = predictor.plans_manager, predictor.configuration_manager
    # nnU-Net's spacing is in its transposed array order; the phantom wants (i, j, k), i.e. the original order reversed.
    original_order = [configuration.spacing[i] for i in plans.transpose_backward]
    image = render_mr(make_phantom(PhantomSpec(spacing=tuple(original_order[::-1]))).labels, seed=0)
    properties = {"spacing": [float(s) for s in image.spacing[::-1]]}
    preprocessor = configuration.preprocessor_class(verbose=False)
    data, _, _ = preprocessor.run_case_npy(
        image.array[None].astype(np.float32), None, properties, plans, configuration, predictor.dataset_json
    )
    patch = _centre_patch(np.asarray(data, dtype=np.float32), input_shape[2:])
    out = np.zeros(input_shape, dtype=np.float32)
    out[0, : patch.shape[0]] = patch[: input_shape[1]]
    return out


def _centre_patch(data: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """(C, *size) around the centre of ``data`` (C, ...); zero-padded where the image is smaller (as nnU-Net pads)."""
    out = np.zeros((data.shape[0], *size), dtype=np.float32)
    src, dst = [slice(None)], [slice(None)]
    for have, want in zip(data.shape[1:], size, strict=True):
        start = max((have - want) // 2, 0)
        n = min(have, want)
        offset = max((want - have) // 2, 0)
        src.append(slice(start, start + n))
        dst.append(slice(offset, offset + n))
    out[tuple(dst)] = data[tuple(src)]
    return out
