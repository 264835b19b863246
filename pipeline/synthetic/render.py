"""MR-like intensity images rendered from a canonical label map (synthetic: tests, examples, the demo model)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import labels as L
from ..volume import Volume

# Rough DESS-like tissue signal (arbitrary units): fluid bright, cartilage intermediate, marrow darker.
TISSUE_SIGNAL: Mapping[int, float] = {
    0: 60.0,
    L.CANONICAL[L.FEMUR]: 180.0,
    L.CANONICAL[L.TIBIA]: 170.0,
    L.CANONICAL[L.PATELLA]: 175.0,
    L.CANONICAL[L.FEMORAL_CARTILAGE]: 420.0,
    L.CANONICAL[L.MEDIAL_TIBIAL_CARTILAGE]: 400.0,
    L.CANONICAL[L.LATERAL_TIBIAL_CARTILAGE]: 410.0,
    L.CANONICAL[L.PATELLAR_CARTILAGE]: 430.0,
    L.CANONICAL[L.MEDIAL_MENISCUS]: 25.0,
    L.CANONICAL[L.LATERAL_MENISCUS]: 30.0,
}


def render_mr(
    labels: Volume,
    *,
    seed: int = 0,
    noise: float = 0.04,
    bias: float = 0.25,
    tissue_signal: Mapping[int, float] | None = None,
) -> Volume:
    """An MR-like intensity image from a canonical label map.

    Tissue signal per label (``tissue_signal``: label value -> signal; default DESS-like, ``TISSUE_SIGNAL``),
    partial-volume blur (0.4 mm), a smooth multiplicative bias field and Rician-like noise (``noise`` times the
    cartilage signal). Synthetic: for tests and the demo model only.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    lut = np.zeros(256, dtype=np.float32)
    for value, signal in (TISSUE_SIGNAL if tissue_signal is None else tissue_signal).items():
        lut[value] = signal
    image = lut[labels.array]
    sigma_vox = [0.4 / s for s in labels.spacing[::-1]]
    image = ndimage.gaussian_filter(image, sigma_vox)
    shape = np.array(image.shape)
    coords = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    kk, jj, ii = np.meshgrid(*coords, indexing="ij", sparse=True)
    phase = rng.uniform(0, np.pi, 3)
    field_ = (
        1 + bias * (np.sin(1.3 * kk + phase[0]) * np.cos(1.1 * jj + phase[1]) + 0.5 * np.sin(0.9 * ii + phase[2])) / 1.5
    )
    image = image * field_.astype(np.float32)
    sd = noise * 420.0
    real = image + rng.normal(0, sd, image.shape).astype(np.float32)
    imag = rng.normal(0, sd, image.shape).astype(np.float32)
    magnitude = np.sqrt(real**2 + imag**2)
    return labels.with_array(magnitude.astype(np.float32), synthetic=True, rendered_from="labels")
