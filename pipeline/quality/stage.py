"""The segmentation-QC stage: network confidence + anatomical plausibility -> one verdict (``verdict.judge``).

Runs after morphometry and the shape model (it reads their results) and changes nothing: a "failed" verdict still
returns the whole analysis, marked. The engine calls :func:`assess_segmentation` in one line.
"""

from __future__ import annotations

from ..labels import LabelScheme
from ..morphometry.stage import Morphometry
from ..outcome import NotComputed
from ..segmentation.confidence import NetworkConfidence
from ..volume import Volume
from .plausibility import plausibility_findings, pose_findings
from .verdict import SegmentationQC, judge


def assess_segmentation(
    labels: Volume,
    morphometry: Morphometry,
    *,
    confidence: NetworkConfidence | None,
    scheme: LabelScheme,
    labels_given: bool,
    shape: object | None = None,
) -> SegmentationQC:
    """The verdict on one label map.

    Args:
        labels: the canonical label map that was measured.
        morphometry: what the morphometry stage measured on it.
        confidence: the network's confidence (``Segmentation.confidence``); None for a given label map.
        scheme: the label scheme the map came in: a given map is judged only on the structures it names.
        labels_given: the label map was supplied by the user (says so in the verdict's basis).
        shape: the shape-model result (its bone reconstruction distance is checked when it ran).
    """
    assessed = set(confidence.structures) if confidence is not None else set(scheme.values)
    assd = None if shape is None or isinstance(shape, NotComputed) else getattr(shape, "assd_bone_mm", None)
    findings = plausibility_findings(
        labels, morphometry.structures, morphometry.cartilage, assessed=assessed, shape_assd_mm=assd
    )
    if not labels_given:  # how the network saw the knee; a given map's pose says nothing about its quality
        findings += pose_findings(labels)
    return judge(findings, confidence=confidence, assessed=assessed, labels_given=labels_given)
