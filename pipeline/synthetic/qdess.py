"""A synthetic two-echo GE qDESS DICOM series of the phantom knee, with its true T2 per cartilage region.

``python -m pipeline synth --out DIR --qdess`` writes ``DIR/qdess/`` (one file per slice and echo, GE spoiler tags)
and ``DIR/t2_truth.json``; the app's "Run the qDESS example" uses it too. The echoes are made so that their
root-sum-of-squares is the MR-like image the demo model was trained on (``render.render_mr``), and their ratio
carries T2 through the qDESS signal model (Sveinsson 2017). That is the model ``pipeline.t2`` inverts: this series
checks the plumbing end to end (DICOM -> echoes -> segmentation -> regional T2), not the physics; the T2 tests use an
independently written model and ``bench/t2_vs_dosma.py`` compares with DOSMA.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import labels as L
from ..config import AnalysisConfig
from ..morphometry import anatomy
from ..t2.qdess import T2Params, expected_ratio
from .dicom_series import write_mr_series
from .phantom import Phantom, PhantomSpec, make_phantom
from .render import render_mr

#: GE spoiler values of a real qDESS knee scan: GL area (0019,10B6) and TG in microseconds (0019,10B7).
GE_GL_AREA = 3131.662354
GE_TG_US = 2472.0
TR_MS, TE_MS, FLIP_DEG = 20.0, 5.8, 20.0
#: True T2 (ms) per cartilage region id (femoral subregions differ so pooling is exercised).
REGION_T2_MS = {11: 36.0, 12: 38.0, 13: 40.0, 14: 42.0, 15: 44.0, 5: 32.0, 6: 34.0, 7: 41.0}
#: T2 (ms) of the other tissues, per canonical label (fluid/background above the statistics range).
TISSUE_T2_MS = {0: 250.0, 1: 50.0, 2: 50.0, 3: 50.0, 8: 12.0, 9: 12.0}
SIGNAL_SCALE = 5.0  # render_mr's arbitrary units -> uint16 pixel values with cartilage near 2000


@dataclass(frozen=True)
class SeriesExample:
    """Where a synthetic DICOM series was written, and its truth (mean T2 per region, ms)."""

    series_dir: Path
    truth_path: Path
    truth_ms: dict[str, float]
    phantom: Phantom


def truth_t2_map(
    phantom: Phantom, *, region_t2_ms: dict[int, float] = REGION_T2_MS, tissue_t2_ms: dict[int, float] = TISSUE_T2_MS
) -> tuple[np.ndarray, dict[str, float]]:
    """T2 (ms) per voxel and the true mean T2 of every reported region (voxel-weighted, as the statistics are).

    ``region_t2_ms``: T2 per cartilage region id; ``tissue_t2_ms``: T2 per canonical label elsewhere.
    """
    labels = phantom.labels
    femoral, _ = anatomy.femoral_subregions(labels, anatomy.detect_laterality(labels), AnalysisConfig())
    regions = anatomy.region_map(labels, femoral)
    t2 = np.zeros(labels.array.shape, dtype=np.float64)
    for value, t2_ms in tissue_t2_ms.items():
        t2[labels.array == value] = t2_ms
    for region, t2_ms in region_t2_ms.items():
        t2[regions == region] = t2_ms
    truth = {}
    for name, ids in L.CARTILAGE_REGIONS.items():
        member = np.isin(regions, ids)
        truth[name] = round(float(t2[member].mean()), 3) if member.any() else None
    return t2, {k: v for k, v in truth.items() if v is not None}


def qdess_echoes(phantom: Phantom, t2_ms: np.ndarray, *, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Echo magnitudes whose root-sum-of-squares is the rendered MR image and whose ratio encodes T2."""
    clean = render_mr(phantom.labels, seed=seed, noise=0.0).array.astype(np.float64) * SIGNAL_SCALE
    ratio = expected_ratio(
        t2_ms, tr_ms=TR_MS, te_ms=TE_MS, flip_deg=FLIP_DEG, gl_area=GE_GL_AREA, tg_us=GE_TG_US, params=T2Params()
    )
    echo1 = clean / np.sqrt(1.0 + ratio**2)
    echo2 = echo1 * ratio
    rng = np.random.default_rng(seed + 1)
    sigma = noise * 420.0 * SIGNAL_SCALE / np.sqrt(2.0)  # per echo, so the RSS has render_mr's noise level
    noisy = [np.hypot(e + rng.normal(0, sigma, e.shape), rng.normal(0, sigma, e.shape)) for e in (echo1, echo2)]
    return noisy[0], noisy[1]


def write_qdess_example(
    out: Path,
    *,
    side: str = "right",
    seed: int = 0,
    noise: float = 0.04,
    spec: PhantomSpec | None = None,
    patient: dict[str, str] | None = None,
) -> SeriesExample:
    """Write ``out/qdess/`` (the series) and ``out/t2_truth.json``; returns the paths and the truth."""
    out = Path(out)
    phantom = make_phantom(spec or PhantomSpec(side=side))
    t2_ms, truth = truth_t2_map(phantom)
    echo1, echo2 = qdess_echoes(phantom, t2_ms, seed=seed, noise=noise)
    series = write_mr_series(
        out / "qdess",
        phantom.labels,
        [echo1, echo2],
        [TE_MS, 2 * TR_MS - TE_MS],
        tr_ms=TR_MS,
        flip_deg=FLIP_DEG,
        description="Sag 3D qDESS (synthetic)",
        spoiler_tags=(f"{GE_GL_AREA:.6f}", f"{GE_TG_US:.6f}"),
        patient=patient,
    )
    truth_path = out / "t2_truth.json"
    truth_path.write_text(
        json.dumps(
            {
                "units": "ms",
                "regions": truth,
                "note": "True mean T2 per region of the synthetic qDESS series (voxel-weighted, true cartilage).",
                "acquisition": {  # the key names of results.json's t2.acquisition
                    "repetition_time_ms": TR_MS,
                    "echo_time_ms": TE_MS,
                    "flip_angle_deg": FLIP_DEG,
                    "gl_area": GE_GL_AREA,
                    "tg_us": GE_TG_US,
                },
            },
            indent=2,
        )
    )
    return SeriesExample(series, truth_path, truth, phantom)
