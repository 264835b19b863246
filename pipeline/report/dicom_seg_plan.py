"""Whether a DICOM Segmentation can be made for an analysis, and what it will hold: the ``dicom_seg`` section of
results.json. Planning only (no highdicom): the results class reads it, the SEG writer (``dicom_seg``) follows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import labels as L

if TYPE_CHECKING:
    from .analysis_view import AnalysisView


class DicomSegUnavailable(Exception):
    """No SEG can be made for this result; the message says why (recorded in results.json)."""


@dataclass(frozen=True)
class SegPlan:
    """What the SEG will hold: segment number -> structure, and the source headers it references."""

    structures: tuple[str, ...]
    source_headers: tuple[Any, ...]


def seg_file_name(case_id: str) -> str:
    return f"{case_id}_seg.dcm"


def plan_segmentation(result: AnalysisView) -> SegPlan:
    """Which structures and source headers; raises DicomSegUnavailable (with the reason) for non-DICOM inputs."""
    image = result.image
    if image is None:
        raise DicomSegUnavailable(
            "No image was analysed (label map only): a DICOM Segmentation must reference the DICOM series it "
            "segments. Give the DICOM series with the label map to get one."
        )
    source = image.source
    if source is None:
        kind = image.meta.get("source_format") or "a non-DICOM file"
        raise DicomSegUnavailable(
            f"The image was read from {kind} ({image.meta.get('file_name') or 'in memory'}), not from a classic "
            "DICOM series whose headers were kept: a DICOM Segmentation references the source DICOM instances. "
            "Upload the DICOM series (folder or zip) to get one."
        )
    headers = tuple(source.echoes[0].headers)
    if len(headers) != image.array.shape[0]:
        raise DicomSegUnavailable("The DICOM series does not have one file per slice; no DICOM-SEG was written.")
    present = tuple(name for name in L.STRUCTURES if result.structures[name].present)
    return SegPlan(present, headers)


def seg_section(result: AnalysisView) -> dict:
    """The ``dicom_seg`` section of results.json: what will be written, or why nothing is."""
    try:
        plan = plan_segmentation(result)
    except DicomSegUnavailable as exc:
        return {"computed": False, "reason": str(exc)}
    return {
        "computed": True,
        "file": seg_file_name(result.case_id),
        "segments": {str(i): name for i, name in enumerate(plan.structures, start=1)},
        "segmentation_type": "BINARY",
        "references": "every frame references its source SOP instance (echo 1) of the analysed series",
    }
