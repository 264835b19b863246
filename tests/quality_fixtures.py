"""Shared by the segmentation-QC tests: the demo engine, analyses of synthetic knees (cached per session), and the
real data of the mskt sdist when bench/mskt_data.py has fetched it (tests skip without it)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MSKT_DATA = ROOT / "bench" / "data"
#: The real label maps' values (bench/thickness_vs_pymskt.py decided them from anatomy); 8 = fibula, not analysed.
MSKT_SCHEME = {
    "femur": 5,
    "tibia": 6,
    "patella": 7,
    "femoral_cartilage": 1,
    "medial_tibial_cartilage": 2,
    "lateral_tibial_cartilage": 3,
    "patellar_cartilage": 4,
}
#: A coarse grid (1 mm, the demo model's own working spacing): segmentations in a few seconds.
COARSE = (1.0, 1.0, 1.0)


def mskt_file(name: str) -> Path:
    """A file or folder of the mskt sdist's data, or a clean skip when it has not been fetched."""
    path = MSKT_DATA / name
    if not path.exists():
        pytest.skip(f"real data {name} not present: run `python bench/seg_qc.py --real` once (fetches the mskt sdist)")
    return path


@functools.lru_cache(maxsize=1)
def demo_engine():
    from pipeline.config import InferenceOptions
    from pipeline.engine import Engine

    return Engine.load("demo", inference=InferenceOptions(device="cpu"), download=False)


@functools.lru_cache(maxsize=4)
def demo_analysis(kind: str = "clean", severity: float = 0.0, seed: int = 3, coarse: bool = False):
    """(case, result): a synthetic knee degraded as ``kind`` and analysed with the demo model, as the app does."""
    from dataclasses import replace

    from pipeline.synthetic.degrade import base_spec, degraded_knee

    spec = base_spec(seed)
    spec = replace(spec, side="right", orientation="sagittal", spacing=COARSE if coarse else (0.36, 0.36, 0.7))
    case = degraded_knee(kind, severity, seed=seed, spec=spec)
    return case, demo_engine().analyze(case.image, t2=False, case_id=case.name)


@functools.lru_cache(maxsize=1)
def example_analysis():
    """(phantom, result): the built-in example (app/examples.py: the right phantom, ``render_mr`` defaults)
    segmented and analysed by the demo model."""
    from pipeline.synthetic import make_phantom, render_mr

    phantom = make_phantom(side="right")
    return phantom, demo_engine().analyze(render_mr(phantom.labels), t2=False, case_id="synthetic_right_knee")
