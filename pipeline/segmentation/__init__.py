"""Segmentation: nnU-Net v2 in-process (``segmenter``), model labels -> our structures (``label_map``), clean-up
and the knee check (``postprocess``), devices, the tile-reporting predictor and the network's confidence
(``confidence``). Weights come from ``pipeline.weights``.

Importing this package does not import torch or nnunetv2; building a Segmenter does.
"""

from .confidence import NetworkConfidence, StructureConfidence
from .devices import select_device
from .label_map import LabelMapping, map_model_labels, structure_for_label_name
from .postprocess import knee_problems, postprocess
from .segmenter import Segmentation, Segmenter

__all__ = [
    "LabelMapping",
    "NetworkConfidence",
    "Segmentation",
    "Segmenter",
    "StructureConfidence",
    "knee_problems",
    "map_model_labels",
    "postprocess",
    "select_device",
    "structure_for_label_name",
]
