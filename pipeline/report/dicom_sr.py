"""The measurement report as a DICOM Structured Report (Comprehensive 3D SR, TID 1500), for PACS and DICOM viewers.

One measurement group (TID 1411) per cartilage region with a segment in the DICOM-SEGs (the structures' SEG for the
whole femoral, the tibial and the patellar cartilage, the subregions' SEG for the femoral subregions): area-weighted
mean and median thickness (mm), volume (mm³) and, when computed, mean T2 (ms). Each group references its SEG segment and
the source series, names the region as a finding site (bone, knee side, medial/lateral and subregion modifiers)
and the algorithm (KneeScope version, model and weights revision, or "label map supplied"). A last group (TID
1501) carries quality control: the segmentation QC verdict as a coded qualitative evaluation when results.json has
``qc.segmentation.verdict``, and each QC warning as text.

Every number is read from the results.json dict as written (already rounded), so the SR, the CSV, the PDF and
the JSON cannot disagree. Codes: ``pipeline.dicom_codes``. Like the SEG, the SR carries the source's patient and
study identifiers (copied by highdicom from the referenced instances), as it must to be filed with the study.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import __version__
from .. import dicom_codes as C
from .. import labels as L
from .dicom_source import DicomObjectUnavailable, without_pixels

if TYPE_CHECKING:
    from .analysis_view import AnalysisView

SR_SERIES_NUMBER = 902
#: The SEG segment each reported region is: its own for the femoral subregions, its structure's otherwise.
REGION_SEGMENT = {
    "femoral": L.FEMORAL_CARTILAGE,
    **{name: name for name in L.FEMORAL_SUBREGIONS},
    "medial_tibial": L.MEDIAL_TIBIAL_CARTILAGE,
    "lateral_tibial": L.LATERAL_TIBIAL_CARTILAGE,
    "patellar": L.PATELLAR_CARTILAGE,
}
QC_IDENTIFIER = "KneeScope quality control"
#: Device observer UID: the same for every report KneeScope writes (derived from its name, not random).
DEVICE_UID_ENTROPY = ["KneeScope measurement report device"]


def sr_file_name(case_id: str) -> str:
    return f"{case_id}_sr.dcm"


def reported_regions(results: dict) -> list[str]:
    """The cartilage regions that get a measurement group: a SEG segment and at least one number."""
    seg = results.get("dicom_seg") or {}
    segments = {*seg.get("segments", {}).values(), *seg.get("subregion_segments", {}).values()}
    return [region for region in L.CARTILAGE_REGIONS if REGION_SEGMENT[region] in segments and _values(results, region)]


def sr_section(results: dict) -> dict:
    """The ``dicom_sr`` section of results.json, from its ``dicom_seg`` section (the SR needs the SEG)."""
    seg = results.get("dicom_seg") or {}
    if not seg.get("computed"):
        return {"computed": False, "reason": "No DICOM-SEG was written, and the report's measurements reference it."}
    regions = reported_regions(results)
    if not regions:
        return {"computed": False, "reason": "No cartilage region was measured: the report would be empty."}
    return {
        "computed": True,
        "file": sr_file_name(results["case_id"]),
        "template": "TID 1500 Measurement Report (Comprehensive 3D SR)",
        "regions": regions,
        "qc_verdict": _verdict(results),
    }


def build_measurement_report(result: AnalysisView, results: dict, segmentations: Sequence[Any]):
    """The Comprehensive 3D SR of ``results`` (the results.json dict) referencing the segments of
    ``segmentations`` (the SEG instances, found by segment label)."""
    import highdicom as hd

    if not sr_section(results)["computed"]:
        raise DicomObjectUnavailable(sr_section(results)["reason"])
    segments = {
        str(item.SegmentLabel): (seg, int(item.SegmentNumber)) for seg in segmentations for item in seg.SegmentSequence
    }
    series_uid = str(segmentations[0].ReferencedSeriesSequence[0].SeriesInstanceUID)
    algorithm = _algorithm(result)
    groups = [
        _region_group(hd, region, results, *segments[REGION_SEGMENT[region]], series_uid, algorithm)
        for region in reported_regions(results)
    ]
    qc = _qc_group(hd, results)
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(hd),
        procedure_reported=C.MRI_PROCEDURE.code(),
        imaging_measurements=[*groups, *([qc] if qc is not None else [])],
    )
    source = result.image.source.echoes[0].headers  # type: ignore[union-attr]  # sr_section: a SEG exists
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*unlikely to represent the intended person name", category=UserWarning
        )
        return hd.sr.Comprehensive3DSR(
            evidence=[without_pixels(ds) for ds in source] + list(segmentations),
            content=report,
            series_instance_uid=hd.UID(),
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="KneeScope",
            series_description="KneeScope measurements (research use only)",
            is_complete=True,
            is_final=False,  # never verified by a clinician: a research measurement
        )


def write_measurement_report(result: AnalysisView, results: dict, segmentations: Sequence[Any], path) -> Any:
    report = build_measurement_report(result, results, segmentations)
    report.save_as(path)
    return report


# --- content ----------------------------------------------------------------------------------------------------
def _values(results: dict, region: str) -> list[tuple[Any, float, Any, Any]]:
    """(concept, value, unit, derivation) of the region's numbers present in results.json."""
    entry = results["cartilage"][region]
    thickness = entry.get("thickness_mm") or {}
    t2 = results["t2"].get("regions", {}).get(region, {}) if results["t2"].get("computed") else {}
    candidates = [
        (C.LENGTH, thickness.get("mean"), C.MILLIMETRE, C.MEAN),
        (C.LENGTH, thickness.get("median"), C.MILLIMETRE, C.MEDIAN),
        (C.VOLUME, entry.get("volume_mm3"), C.CUBIC_MILLIMETRE, None),
        (C.T2, t2.get("mean"), C.MILLISECOND, C.MEAN),
    ]
    return [(name, value, unit, how) for name, value, unit, how in candidates if value is not None]


def _region_group(hd, region: str, results: dict, segmentation, number: int, series_uid: str, algorithm):
    measurements = [
        hd.sr.Measurement(
            name=name.code(),
            value=value,
            unit=unit.code(),
            derivation=None if how is None else how.code(),
            algorithm_id=algorithm,
        )
        for name, value, unit, how in _values(results, region)
    ]
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{region} cartilage"),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=segmentation.SOPClassUID,
            sop_instance_uid=segmentation.SOPInstanceUID,
            segment_number=number,
            source_series=hd.sr.SourceSeriesForSegmentation(series_uid),
        ),
        finding_type=C.CARTILAGE.code(),
        finding_sites=[_finding_site(hd, REGION_SEGMENT[region], results["laterality"]["side"])],
        algorithm_id=algorithm,
        measurements=measurements,
    )


def _finding_site(hd, segment: str, side: str):
    """The region's bone, the knee side and its modifiers (medial, anterior, distal, ...)."""
    coding = C.SEGMENT_CODING[segment]
    laterality = C.SIDES.get(side)
    modifiers = list(coding.modifiers)
    site = hd.sr.FindingSite(
        anatomic_location=coding.region.code(),  # type: ignore[union-attr]  # cartilage always has its bone
        laterality=None if laterality is None else laterality.code(),
        topographical_modifier=modifiers[0].code() if modifiers else None,
    )
    for extra in modifiers[1:]:  # two modifiers (medial + distal): the second beside the first
        if "ContentSequence" not in site:
            site.ContentSequence = hd.sr.ContentSequence()
        site.ContentSequence.append(
            hd.sr.CodeContentItem(
                name=C.TOPOGRAPHICAL_MODIFIER.code(),
                value=extra.code(),
                relationship_type=hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD,
            )
        )
    return site


def _verdict(results: dict) -> str | None:
    segmentation = (results.get("qc") or {}).get("segmentation")
    verdict = segmentation.get("verdict") if isinstance(segmentation, dict) else None
    return verdict if verdict in C.VERDICTS else None


def _qc_group(hd, results: dict):
    """QC verdict (coded, when results.json has one) and the QC warnings (text); None when there is neither."""
    verdict = _verdict(results)
    warnings_ = list((results.get("qc") or {}).get("warnings", []))
    if verdict is None and not warnings_:
        return None
    evaluations = (
        [hd.sr.QualitativeEvaluation(C.QUALITY_ASSESSMENT.code(), C.VERDICTS[verdict].code())] if verdict else None
    )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=QC_IDENTIFIER),
        qualitative_evaluations=evaluations,
    )
    for text in warnings_:
        group[0].ContentSequence.append(
            hd.sr.TextContentItem(
                name=C.QUALITY_FINDING.code(),
                value=text[:1024],  # UT would allow more; a warning is a sentence
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        )
    return group


def _observation_context(hd):
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=DEVICE_UID_ENTROPY),
        name="KneeScope",
        manufacturer_name="KneeScope",
        model_name=f"KneeScope {__version__}",
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _algorithm(result: AnalysisView):
    import highdicom as hd

    from .dicom_seg import algorithm_parameters

    parameters = algorithm_parameters(result)
    return hd.sr.AlgorithmIdentification(
        name="KneeScope", version=__version__, parameters=[f"{key}={value}" for key, value in parameters.items()]
    )
