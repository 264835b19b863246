"""Trust in a segmentation: the network's confidence and the label map's anatomical plausibility, one verdict.

``stage.assess_segmentation`` (the engine's stage) -> ``verdict.SegmentationQC`` (results.json ``qc.segmentation``).
``plausibility`` checks a label map against ``reference_ranges`` (cited); ``verdict`` combines and decides.
"""

from .plausibility import Finding, plausibility_findings
from .stage import assess_segmentation
from .verdict import OK, VERDICTS, SegmentationQC, expected_dice, judge

__all__ = [
    "OK",
    "VERDICTS",
    "Finding",
    "SegmentationQC",
    "assess_segmentation",
    "expected_dice",
    "judge",
    "plausibility_findings",
]
