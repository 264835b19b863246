"""DICOM Segmentation (SEG) of the label map, referencing the source DICOM series, for PACS and DICOM viewers.

One binary SEG object built with highdicom: one segment per structure present (label and colour as in
label_table.json), then one per femoral subregion present (they overlap the femoral cartilage segment, so that the
measurement report can point at each region it reports). The source series' headers are already in memory
(``result.image.source``: each echo's headers in slice order, pixel data deferred); highdicom copies the patient,
study and frame-of-reference attributes from them.

Geometry: frame k is slice k of the label map (which lies on the image grid), placed at source file k's own
position and referencing it (``dicom_source``). No regular volume is rebuilt and matched back to the files, so the
slice-position jitter and gaps of real series do not matter, and no axis is flipped by hand.

Codes: ``pipeline.dicom_codes`` (SNOMED CT, as DICOM PS3.16 lists them); the knee side (from ``laterality``) is
the property type modifier of every segment. The SEG carries the source's patient and study identifiers, as it must
to be filed next to its series.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__
from .. import dicom_codes as C
from .. import labels as L
from .dicom_source import DicomObjectUnavailable, SourceFrames, source_frames, without_pixels

if TYPE_CHECKING:
    from .results import KneeAnalysis

SEG_SERIES_NUMBER = 901
#: Kept for callers of the earlier name.
DicomSegUnavailable = DicomObjectUnavailable


@dataclass(frozen=True)
class SegPlan:
    """What the SEG will hold: segment names in segment-number order (1, 2, ...), and the source frames."""

    segments: tuple[str, ...]
    frames: SourceFrames

    def number(self, name: str) -> int | None:
        """The segment number of a structure or femoral subregion (None when it has no segment)."""
        return self.segments.index(name) + 1 if name in self.segments else None


def seg_file_name(case_id: str) -> str:
    return f"{case_id}_seg.dcm"


def plan_segmentation(result: KneeAnalysis) -> SegPlan:
    """Segments and source frames; raises DicomObjectUnavailable (with the reason) when no SEG can be made."""
    frames = source_frames(result.image, result.labels, what="DICOM Segmentation")
    present = [name for name in L.STRUCTURES if result.structures[name].present]
    if result.structures[L.FEMORAL_CARTILAGE].present:
        found = np.bincount(result.subregions.array.ravel(), minlength=256)
        present += [name for name, value in L.FEMORAL_SUBREGIONS.items() if found[value]]
    if not present:
        raise DicomObjectUnavailable("The label map is empty: a DICOM Segmentation needs at least one segment.")
    return SegPlan(tuple(present), frames)


def seg_section(result: KneeAnalysis) -> dict:
    """The ``dicom_seg`` section of results.json: what will be written, or why nothing is."""
    try:
        plan = plan_segmentation(result)
    except DicomObjectUnavailable as exc:
        return {"computed": False, "reason": str(exc)}
    return {
        "computed": True,
        "file": seg_file_name(result.case_id),
        "segments": {str(i): name for i, name in enumerate(plan.segments, start=1)},
        "segmentation_type": "BINARY",
        "references": "frame k is label-map slice k at the position of source file k (echo 1), which it references",
        "max_slice_offset_mm": round(plan.frames.max_offset_mm, 6),
    }


def segment_masks(result: KneeAnalysis, segments: tuple[str, ...]) -> np.ndarray:
    """(slices, rows, columns, segments) booleans: each structure's voxels, then each femoral subregion's."""
    masks = np.empty((*result.labels.array.shape, len(segments)), dtype=bool)
    for n, name in enumerate(segments):
        source, value = (
            (result.subregions.array, L.FEMORAL_SUBREGIONS[name])
            if name in L.FEMORAL_SUBREGIONS
            else (result.labels.array, L.CANONICAL[name])
        )
        np.equal(source, value, out=masks[..., n])
    return masks


def build_segmentation(result: KneeAnalysis, plan: SegPlan | None = None):
    """The highdicom Segmentation of ``result``'s label map on its source series (see the module docstring)."""
    import highdicom as hd

    plan = plan or plan_segmentation(result)
    with warnings.catch_warnings():
        # highdicom warns about single-component person names ("ANONYMOUS"), common in exports; they are copied.
        warnings.filterwarnings(
            "ignore", message=".*unlikely to represent the intended person name", category=UserWarning
        )
        return hd.seg.Segmentation(
            source_images=[without_pixels(ds) for ds in plan.frames.headers],
            pixel_array=segment_masks(result, plan.segments),  # frame k <-> source_images[k]: their positions
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=_descriptions(plan.segments, result),
            series_instance_uid=hd.UID(),
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="KneeScope",
            manufacturer_model_name="KneeScope",
            software_versions=__version__,
            device_serial_number="none",
            content_label="KNEE_SEG",
            content_description="KneeScope knee segmentation (research use only)",
            series_description="KneeScope segmentation (research use only)",
        )


def write_dicom_seg(result: KneeAnalysis, path: Path):
    """Build and save the SEG; returns the highdicom Segmentation (the report references its segments)."""
    segmentation = build_segmentation(result)
    segmentation.save_as(path)
    return segmentation


def algorithm_parameters(result: KneeAnalysis) -> dict[str, str]:
    """The model and weights revision, or that the label map was supplied (SEG and SR algorithm identification)."""
    segmentation = result.provenance.get("segmentation") or {}
    if segmentation:
        return {
            "model": str(segmentation.get("engine_model") or segmentation.get("model")),
            "weights_revision": str(segmentation.get("revision")),
        }
    return {"labels": "label map supplied by the user (not segmented by KneeScope)"}


def _algorithm(result: KneeAnalysis):
    import highdicom as hd

    return hd.AlgorithmIdentificationSequence(
        name="KneeScope",
        family=C.ARTIFICIAL_INTELLIGENCE.code(),
        version=__version__,
        source="KneeScope",
        parameters=algorithm_parameters(result),
    )


def _descriptions(segments: tuple[str, ...], result: KneeAnalysis) -> list:
    import highdicom as hd

    segmented = bool(result.provenance.get("segmentation"))
    algorithm = _algorithm(result)
    side = C.SIDES.get(result.laterality.side)
    out = []
    for number, name in enumerate(segments, start=1):
        coding = C.SEGMENT_CODING[name]
        description = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=name,  # as in label_table.json
            segmented_property_category=coding.category.code(),
            segmented_property_type=coding.kind.code(),
            # A supplied label map's origin is unknown; the user may have drawn or corrected it.
            algorithm_type="AUTOMATIC" if segmented else "SEMIAUTOMATIC",
            algorithm_identification=algorithm,
            anatomic_regions=None if coding.region is None else [coding.region.code()],
            display_color=hd.color.CIELabColor.from_rgb(*segment_rgb(name)),
        )
        description.SegmentDescription = L.structure_display_name(name)
        if side is not None:
            type_item = description.SegmentedPropertyTypeCodeSequence[0]
            type_item.SegmentedPropertyTypeModifierCodeSequence = [side.code()]
        if coding.modifiers:
            region = description.AnatomicRegionSequence[0]
            region.AnatomicRegionModifierSequence = [m.code() for m in coding.modifiers]
        out.append(description)
    return out


def segment_rgb(name: str) -> tuple[int, int, int]:
    """A segment's display colour: the structure's, or the femoral subregion's shade in the slice overlays."""
    if name in L.COLOURS:
        return L.COLOURS[name]
    from .slices import label_lut

    rgb = np.rint(label_lut(1.0)[L.FEMORAL_SUBREGIONS[name], :3] * 255).astype(int)
    return int(rgb[0]), int(rgb[1]), int(rgb[2])
