"""KneeScope analysis pipeline: knee MRI -> segmentation, meshes, cartilage thickness, regions, T2, shape model, QC.

Public API (no Gradio, no heavy imports at package import time)::

    from pipeline import Engine, analyze_labels
    engine = Engine.load("fullres")                          # or "demo"; weights resolved and loaded once
    result = engine.run(AnalysisRequest("knee_dicom.zip", t2=True))   # MRI -> KneeAnalysis
    result = engine.analyze("knee_dicom.zip", t2=True)       # the same, keyword form
    result = analyze_labels("seg.nrrd", scheme="native")     # an existing segmentation, same code path
    result.cartilage["medial_tibial"].thickness_mm.mean
    result.write("out/")
    table = run_cohort("MANIFEST.csv", "OUT/", engine="ray")   # a cohort, resumable: one pandas table

The package is grouped by stage: ``io``, ``segmentation``, ``morphometry``, ``t2``, ``shape``, ``report``;
``engine`` is the only place that sequences them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import AnalysisConfig, InferenceOptions
from .errors import (
    EmptySegmentationError,
    GeometryMismatchError,
    InvalidInputError,
    KneePipelineError,
    LabelSchemeError,
    MultipleSeriesError,
    WeightsUnavailableError,
)
from .volume import Volume

_LAZY = {
    "AnalysisRequest": ("request", "AnalysisRequest"),
    "Engine": ("engine", "Engine"),
    "EngineSpec": ("engine_spec", "EngineSpec"),
    "analyze_labels": ("engine", "analyze_labels"),
    "compare": ("longitudinal", "compare"),
    "KneeAnalysis": ("report.results", "KneeAnalysis"),
    "load_image": ("io", "load_image"),
    "load_label_map": ("io", "load_label_map"),
    "make_phantom": ("synthetic", "make_phantom"),
    "render_mr": ("synthetic", "render_mr"),
    "PhantomSpec": ("synthetic", "PhantomSpec"),
    "run_cohort": ("cohort", "run_cohort"),
}


def __getattr__(name: str):
    # Lazy: keeps `import pipeline` instant (no SciPy/VTK/torch) for the label registry and config users.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


__all__ = [
    "AnalysisConfig",
    "AnalysisRequest",
    "EmptySegmentationError",
    "Engine",
    "EngineSpec",
    "GeometryMismatchError",
    "InferenceOptions",
    "InvalidInputError",
    "KneeAnalysis",
    "KneePipelineError",
    "LabelSchemeError",
    "MultipleSeriesError",
    "PhantomSpec",
    "Volume",
    "WeightsUnavailableError",
    "analyze_labels",
    "compare",
    "load_image",
    "load_label_map",
    "make_phantom",
    "render_mr",
    "run_cohort",
]
