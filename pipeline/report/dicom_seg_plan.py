"""Whether DICOM Segmentations can be made for an analysis, and what they will hold: the ``dicom_seg`` section of
results.json. Planning only (no highdicom): the results class reads it, the SEG writer (``dicom_seg``) follows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import labels as L
from ..volume import value_counts
from .dicom_source import DicomObjectUnavailable, SourceFrames, source_frames

if TYPE_CHECKING:
    from .analysis_view import AnalysisView

#: Kept for callers of the earlier name.
DicomSegUnavailable = DicomObjectUnavailable


@dataclass(frozen=True)
class SegPlan:
    """What the SEGs will hold: structure and femoral subregion names in segment-number order, the source frames."""

    structures: tuple[str, ...]
    subregions: tuple[str, ...]
    frames: SourceFrames


def seg_file_name(case_id: str) -> str:
    return f"{case_id}_seg.dcm"


def subregions_file_name(case_id: str) -> str:
    return f"{case_id}_subregions_seg.dcm"


def plan_segmentation(result: AnalysisView) -> SegPlan:
    """Segments and source frames; raises DicomObjectUnavailable (with the reason) when no SEG can be made."""
    frames = source_frames(result.image, result.labels, what="DICOM Segmentation")
    structures = tuple(name for name in L.STRUCTURES if result.structures[name].present)
    if not structures:
        raise DicomObjectUnavailable("The label map is empty: a DICOM Segmentation needs at least one segment.")
    found = value_counts(result.subregions.array)
    subregions = tuple(name for name, value in L.FEMORAL_SUBREGIONS.items() if value < len(found) and found[value])
    return SegPlan(structures, subregions, frames)


def seg_section(result: AnalysisView) -> dict:
    """The ``dicom_seg`` section of results.json: what will be written, or why nothing is."""
    try:
        plan = plan_segmentation(result)
    except DicomObjectUnavailable as exc:
        return {"computed": False, "reason": str(exc)}
    section = {
        "computed": True,
        "file": seg_file_name(result.case_id),
        "segments": {str(i): name for i, name in enumerate(plan.structures, start=1)},
        "segmentation_type": "BINARY",
        "references": "frame k is label-map slice k at the position of source file k (echo 1), which it references",
        "max_slice_offset_mm": round(plan.frames.max_offset_mm, 6),
    }
    if plan.subregions:
        section["subregions_file"] = subregions_file_name(result.case_id)
        section["subregion_segments"] = {str(i): name for i, name in enumerate(plan.subregions, start=1)}
    return section
