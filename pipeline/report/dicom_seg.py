"""DICOM Segmentation (SEG) of the label map, referencing the source DICOM series, for PACS and DICOM viewers.

One binary SEG object, one segment per structure present (label and colour as in label_table.json), built with
highdicom. The source series' headers are
already in memory (``result.image.source``: each echo's headers in slice order, pixel data deferred) and are what
highdicom needs: it copies the patient, study and frame-of-reference attributes from them and references their SOP
instances per frame. Echo 1's headers are used (every echo shares its slice positions).

Geometry is left to highdicom: the label map becomes a ``highdicom.Volume`` with its own affine, and
``Volume.match_geometry`` permutes/flips it onto the source series' geometry (slices, rows, columns), which
refuses anything that is not an exact voxel correspondence. No hand-written axis flips.

Codes are SNOMED CT (next-wave-notes, DICOM-SEG): bones in category Anatomical Structure, cartilage and menisci in
category Tissue with the bone (or the knee) as anatomic region and medial/lateral as its modifier; the knee side
(from ``laterality``) is the property type modifier of every segment.

The SEG carries the source's patient and study identifiers, as it must to be filed next to its series.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from .. import labels as L
from .dicom_seg_plan import DicomSegUnavailable, SegPlan, plan_segmentation

if TYPE_CHECKING:
    from .analysis_view import AnalysisView

SNOMED = "SCT"
SEG_SERIES_NUMBER = 901
ANATOMICAL_STRUCTURE = ("123037004", "Anatomical Structure")
TISSUE = ("85756007", "Tissue")
CARTILAGE = ("309312004", "Cartilage")
MENISCUS = ("74135004", "Meniscus")
KNEE = ("72696002", "Knee")
BONE_CODES = {L.FEMUR: ("71341001", "Femur"), L.TIBIA: ("12611008", "Tibia"), L.PATELLA: ("64234005", "Patella")}
SIDE_CODES = {"left": ("7771000", "Left"), "right": ("24028007", "Right")}
MEDIAL, LATERAL = ("255561001", "Medial"), ("49370004", "Lateral")
#: (category, type, anatomic region, region modifier) per structure; region None = the structure is the anatomy.
SEGMENT_CODES: dict[str, tuple[tuple, tuple, tuple | None, tuple | None]] = {
    **{bone: (ANATOMICAL_STRUCTURE, code, None, None) for bone, code in BONE_CODES.items()},
    L.FEMORAL_CARTILAGE: (TISSUE, CARTILAGE, BONE_CODES[L.FEMUR], None),
    L.MEDIAL_TIBIAL_CARTILAGE: (TISSUE, CARTILAGE, BONE_CODES[L.TIBIA], MEDIAL),
    L.LATERAL_TIBIAL_CARTILAGE: (TISSUE, CARTILAGE, BONE_CODES[L.TIBIA], LATERAL),
    L.PATELLAR_CARTILAGE: (TISSUE, CARTILAGE, BONE_CODES[L.PATELLA], None),
    L.MEDIAL_MENISCUS: (TISSUE, MENISCUS, KNEE, MEDIAL),
    L.LATERAL_MENISCUS: (TISSUE, MENISCUS, KNEE, LATERAL),
}


def build_segmentation(result: AnalysisView):
    """The highdicom Segmentation of ``result.labels`` on its source series (see the module docstring)."""
    import highdicom as hd

    plan = plan_segmentation(result)
    numbers = np.zeros(256, dtype=np.uint8)
    for number, name in enumerate(plan.structures, start=1):
        numbers[L.CANONICAL[name]] = number
    labels = result.labels
    first = plan.source_headers[0]
    frame_uid = str(first.FrameOfReferenceUID)
    volume = hd.Volume.from_components(
        numbers[labels.array].transpose(2, 1, 0),  # (i, j, k): the axes of spacing, direction and origin
        spacing=labels.spacing,
        direction=labels.direction.tolist(),
        position=labels.origin,
        coordinate_system="PATIENT",
        frame_of_reference_uid=frame_uid,
    )
    volume = volume.match_geometry(_source_geometry(plan.source_headers))
    with warnings.catch_warnings():
        # highdicom warns about single-component person names ("ANONYMOUS"), common in exports; they are copied.
        warnings.filterwarnings(
            "ignore", message=".*unlikely to represent the intended person name", category=UserWarning
        )
        return _segmentation(hd, plan, volume, result)


def _segmentation(hd, plan: SegPlan, volume, result: AnalysisView):
    return hd.seg.Segmentation(
        source_images=[_without_pixels(ds) for ds in plan.source_headers],
        pixel_array=volume,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_descriptions(plan.structures, result),
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


def write_dicom_seg(result: AnalysisView, path: Path) -> Path:
    """Build and save the SEG; raises DicomSegUnavailable when the input was not a DICOM series."""
    build_segmentation(result).save_as(path)
    return path


#: Type 2 patient/study attributes (present, possibly empty, in a conformant MR image) that highdicom copies into
#: the SEG; anonymised exports sometimes drop them, and an empty value is what the standard allows for unknown.
TYPE2_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)
PIXEL_DATA = 0x7FE00010


def _without_pixels(ds: Any):
    """A new Dataset with the header's elements, minus its (deferred, never needed) pixel data, plus any missing
    Type 2 attributes as empty values. The headers were read once by pipeline.io and are reused, not reread; the
    copy keeps the caller's Dataset untouched."""
    from pydicom.dataset import Dataset

    # keys() and get_item(): iterating the Dataset itself would read the deferred pixel data from the file.
    copy = Dataset({tag: ds.get_item(tag) for tag in ds.keys() if tag != PIXEL_DATA})  # noqa: SIM118
    for keyword in TYPE2_ATTRIBUTES:
        if keyword not in copy:
            setattr(copy, keyword, "")
    return copy


def _source_geometry(headers: tuple[Any, ...]):
    """The source series' voxel grid (slices, rows, columns) from its headers (no pixel data needed)."""
    import highdicom as hd
    from highdicom.spatial import get_series_volume_positions

    spacing, positions = get_series_volume_positions(list(headers))
    if spacing is None or positions is None:
        raise DicomSegUnavailable(
            "The source series' slices are not regularly spaced parallel planes; no DICOM-SEG was written."
        )
    first = headers[positions.index(0)]
    return hd.VolumeGeometry.from_attributes(
        image_position=first.ImagePositionPatient,
        image_orientation=first.ImageOrientationPatient,
        rows=int(first.Rows),
        columns=int(first.Columns),
        pixel_spacing=first.PixelSpacing,
        spacing_between_slices=spacing,
        number_of_frames=len(headers),
        coordinate_system="PATIENT",
        frame_of_reference_uid=str(first.FrameOfReferenceUID),
    )


def _algorithm(result: AnalysisView):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    segmentation = result.provenance.get("segmentation") or {}
    if segmentation:
        parameters = {
            "model": str(segmentation.get("engine_model") or segmentation.get("model")),
            "weights_revision": str(segmentation.get("revision")),
        }
    else:
        parameters = {"labels": "label map supplied by the user (not segmented by KneeScope)"}
    family = codes.cid7162.ArtificialIntelligence
    return hd.AlgorithmIdentificationSequence(
        name="KneeScope", family=family, version=__version__, source="KneeScope", parameters=parameters
    )


def _descriptions(structures: tuple[str, ...], result: AnalysisView) -> list:
    import highdicom as hd
    from pydicom.sr.coding import Code

    segmented = bool(result.provenance.get("segmentation"))
    algorithm = _algorithm(result)
    side = SIDE_CODES.get(result.laterality.side)
    out = []
    for number, name in enumerate(structures, start=1):
        category, kind, region, modifier = SEGMENT_CODES[name]
        description = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=name,  # as in label_table.json
            segmented_property_category=Code(category[0], SNOMED, category[1]),
            segmented_property_type=Code(kind[0], SNOMED, kind[1]),
            # A supplied label map's origin is unknown; the user may have drawn or corrected it.
            algorithm_type="AUTOMATIC" if segmented else "SEMIAUTOMATIC",
            algorithm_identification=algorithm,
            anatomic_regions=None if region is None else [Code(region[0], SNOMED, region[1])],
            display_color=hd.color.CIELabColor.from_rgb(*L.COLOURS[name]),
        )
        description.SegmentDescription = L.structure_display_name(name)
        if side is not None:
            type_item = description.SegmentedPropertyTypeCodeSequence[0]
            type_item.SegmentedPropertyTypeModifierCodeSequence = [_coded(side)]
        if modifier is not None:
            description.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [_coded(modifier)]
        out.append(description)
    return out


def _coded(code: tuple[str, str]):
    import highdicom as hd

    return hd.sr.CodedConcept(code[0], SNOMED, code[1])
