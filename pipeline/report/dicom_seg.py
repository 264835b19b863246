"""DICOM Segmentation (SEG) of the label map, referencing the source DICOM series, for PACS and DICOM viewers.

Two binary SEG instances of one series, built with highdicom: ``<case>_seg.dcm`` with one segment per structure
present (label and colour as in label_table.json), and ``<case>_subregions_seg.dcm`` with one segment per femoral
subregion present (the parcellation of the femoral cartilage that the measurement report's groups point at). Two
objects, not one with overlapping segments: each is a label map highdicom takes as one 3-D array, where overlapping
segments would need a (slices, rows, columns, segments) stack, about 23 times the label map's memory
(bench/dicom_objects.py). The source series' headers are already in memory (``result.image.source``: each echo's
headers in slice order, pixel data deferred); highdicom copies the patient, study and frame-of-reference
attributes from them.

Geometry: frame k is slice k of the label map (which lies on the image grid), placed at source file k's own
position and referencing it (``dicom_source``). No regular volume is rebuilt and matched back to the files, so the
slice-position jitter and gaps of real series do not matter, and no axis is flipped by hand.

Codes: ``pipeline.dicom_codes`` (SNOMED CT, as DICOM PS3.16 lists them); the knee side (from ``laterality``) is
the property type modifier of every segment. The SEG carries the source's patient and study identifiers, as it must
to be filed next to its series.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from .. import dicom_codes as C
from .. import labels as L
from .dicom_seg_plan import SegPlan, plan_segmentation, subregions_file_name
from .dicom_source import without_pixels

if TYPE_CHECKING:
    from .analysis_view import AnalysisView

SEG_SERIES_NUMBER = 901


def build_segmentations(result: AnalysisView, plan: SegPlan | None = None) -> tuple[Any, ...]:
    """The structures' SEG and, when femoral cartilage is present, the subregions' SEG (one series)."""
    import highdicom as hd

    plan = plan or plan_segmentation(result)
    series_uid = hd.UID()
    structures = _numbered(result.labels.array, {name: L.CANONICAL[name] for name in plan.structures})
    out = [_segmentation(hd, result, plan, plan.structures, structures, series_uid, 1, "KNEE_SEG")]
    if plan.subregions:
        values = {name: L.FEMORAL_SUBREGIONS[name] for name in plan.subregions}
        subregions = _numbered(result.subregions.array, values)
        out.append(_segmentation(hd, result, plan, plan.subregions, subregions, series_uid, 2, "FEMORAL_REGIONS"))
    return tuple(out)


def build_segmentation(result: AnalysisView):
    """The structures' SEG (the one ``--labels`` reads back)."""
    return build_segmentations(result)[0]


def _numbered(array: np.ndarray, values: dict[str, int]) -> np.ndarray:
    """A label-map style array: segment number n (1, 2, ... in ``values``' order) where ``array`` has value n's."""
    lut = np.zeros(256, dtype=np.uint8)
    for number, value in enumerate(values.values(), start=1):
        lut[value] = number
    return lut[array]  # (slices, rows, columns): frame k <-> source file k


def _segmentation(hd, result, plan: SegPlan, names, pixels, series_uid, instance: int, content_label: str):
    what = "knee segmentation" if instance == 1 else "femoral cartilage subregions"
    with warnings.catch_warnings():
        # highdicom warns about single-component person names ("ANONYMOUS"), common in exports; they are copied.
        warnings.filterwarnings(
            "ignore", message=".*unlikely to represent the intended person name", category=UserWarning
        )
        return hd.seg.Segmentation(
            source_images=[without_pixels(ds) for ds in plan.frames.headers],
            pixel_array=pixels,  # frame k <-> source_images[k]: highdicom copies its position and references it
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=_descriptions(names, result),
            series_instance_uid=series_uid,
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=instance,
            manufacturer="KneeScope",
            manufacturer_model_name="KneeScope",
            software_versions=__version__,
            device_serial_number="none",
            content_label=content_label,
            content_description=f"KneeScope {what} (research use only)",
            series_description="KneeScope segmentation (research use only)",
        )


def write_dicom_seg(result: AnalysisView, path: Path) -> tuple[Any, ...]:
    """Build and save the SEG(s): ``path``, and the subregions' SEG beside it; returns the highdicom objects."""
    segmentations = build_segmentations(result)
    segmentations[0].save_as(path)
    if len(segmentations) > 1:
        segmentations[1].save_as(path.with_name(subregions_file_name(result.case_id)))
    return segmentations


def algorithm_parameters(result: AnalysisView) -> dict[str, str]:
    """The model and weights revision, or that the label map was supplied (SEG and SR algorithm identification)."""
    segmentation = result.provenance.get("segmentation") or {}
    if segmentation:
        return {
            "model": str(segmentation.get("engine_model") or segmentation.get("model")),
            "weights_revision": str(segmentation.get("revision")),
        }
    return {"labels": "label map supplied by the user (not segmented by KneeScope)"}


def _algorithm(result: AnalysisView):
    import highdicom as hd

    return hd.AlgorithmIdentificationSequence(
        name="KneeScope",
        family=C.ARTIFICIAL_INTELLIGENCE.code(),
        version=__version__,
        source="KneeScope",
        parameters=algorithm_parameters(result),
    )


def _descriptions(segments: tuple[str, ...], result: AnalysisView) -> list:
    """One description per segment, numbered 1, 2, ... in ``segments``' order."""
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
