"""KneeScope analysis pipeline: knee MRI segmentation -> meshes, cartilage thickness, regions, QC.

Public API (no Gradio, no heavy imports at package import time)::

    from pipeline import analyze_labels, load_image, make_phantom
    result = analyze_labels("seg.nrrd", scheme="native")
    result.cartilage["medial_tibial"].thickness_mm.mean
    result.write("out/")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import AnalysisConfig
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


def __getattr__(name: str):
    # Lazy: keeps `import pipeline` instant (no SciPy/VTK) for the label registry and config users.
    lazy = {
        "analyze_labels": ("analysis", "analyze_labels"),
        "KneeAnalysis": ("results", "KneeAnalysis"),
        "load_image": ("io", "load_image"),
        "load_label_map": ("io", "load_label_map"),
        "make_phantom": ("synthetic", "make_phantom"),
        "render_mr": ("synthetic", "render_mr"),
        "PhantomSpec": ("synthetic", "PhantomSpec"),
    }
    if name in lazy:
        import importlib

        module, attr = lazy[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


__all__ = [
    "AnalysisConfig",
    "EmptySegmentationError",
    "GeometryMismatchError",
    "InvalidInputError",
    "KneeAnalysis",
    "KneePipelineError",
    "LabelSchemeError",
    "MultipleSeriesError",
    "PhantomSpec",
    "Volume",
    "WeightsUnavailableError",
    "analyze_labels",
    "load_image",
    "load_label_map",
    "make_phantom",
    "render_mr",
]
