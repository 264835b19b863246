"""The measurement report (DICOM SR, TID 1500): valid (dciodvfy), read back with highdicom every measurement equals
results.json, each group references its SEG segment and the source series, and the QC verdict is a coded
qualitative evaluation when results.json carries one."""

from __future__ import annotations

import copy

import highdicom as hd
import pydicom
import pytest

from pipeline import labels as L
from pipeline.report.dicom_sr import REGION_SEGMENT, build_measurement_report
from tests.fixtures.pacs import dciodvfy_errors, jittered_mese_case, real_mese_case

#: results.json value of each (concept, derivation) of a region's group.
THICKNESS = {("410668003", "373098007"): "mean", ("410668003", "373099004"): "median"}


def report_of(case):
    return hd.sr.srread(case.files[case.results_json["dicom_sr"]["file"]])


def expected_measurements(results: dict, region: str) -> dict[tuple[str, str | None], tuple[float, str]]:
    """(concept code, derivation code) -> (value, UCUM unit) as results.json has them."""
    entry, out = results["cartilage"][region], {}
    for key, stat in THICKNESS.items():
        if entry["thickness_mm"] is not None:
            out[key] = (entry["thickness_mm"][stat], "mm")
    out[("118565006", None)] = (entry["volume_mm3"], "mm3")
    if results["t2"]["computed"] and results["t2"]["regions"][region]["mean"] is not None:
        out[("113065", "373098007")] = (results["t2"]["regions"][region]["mean"], "ms")
    return out


def assert_report_equals_results(case) -> None:
    results, report = case.results_json, report_of(case)
    segs = [pydicom.dcmread(case.files[results["dicom_seg"][key]]) for key in ("file", "subregions_file")]
    seg_labels = {
        (s.SOPInstanceUID, int(item.SegmentNumber)): item.SegmentLabel for s in segs for item in s.SegmentSequence
    }
    series_uid = case.result.image.source.series["series_instance_uid"]
    groups = report.content.get_volumetric_roi_measurement_groups()
    assert [g.tracking_identifier for g in groups] == [f"{r} cartilage" for r in L.CARTILAGE_REGIONS]
    for region, group in zip(L.CARTILAGE_REGIONS, groups, strict=True):
        segment = group.referenced_segment
        referenced = (segment.referenced_sop_instance_uid, segment.referenced_segment_numbers[0])
        assert seg_labels[referenced] == REGION_SEGMENT[region]  # in the SEG instance that holds it
        assert segment.source_series_for_segmentation.value == series_uid
        found = {
            (m.name.value, None if m.derivation is None else m.derivation.value): (m.value, m.unit.value)
            for m in group.get_measurements()
        }
        assert found == expected_measurements(results, region), region  # the same numbers, the same rounding
        (site,) = group.finding_sites
        assert (
            site.value.value == {"femur": "71341001", "tibia": "12611008", "patella": "64234005"}[L.REGION_BONE[region]]
        )
        assert group.finding_type.value == "309312004"
        items = group[0].ContentSequence
        algorithm = {item.ConceptNameCodeSequence[0].CodeValue: item.get("TextValue") for item in items}
        assert algorithm["111001"] == "KneeScope"  # Algorithm Name
    evidence = report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert {series_uid, segs[0].SeriesInstanceUID} <= {item.SeriesInstanceUID for item in evidence}


def test_sr_on_the_jittered_series_is_valid_and_equals_results_json():
    case = jittered_mese_case()
    assert case.results_json["dicom_sr"]["computed"] is True
    assert dciodvfy_errors(case.files["jittered_sr.dcm"]) == []
    assert_report_equals_results(case)
    assert report_of(case).PatientID == case.result.image.source.first_header.PatientID  # filed with its study


@pytest.mark.slow
def test_sr_on_the_real_ge_mese_series_is_valid_and_equals_results_json():
    case = real_mese_case()
    assert dciodvfy_errors(case.files["ge_mese_sr.dcm"]) == []
    assert_report_equals_results(case)


def quality_group(report):
    (group,) = report.content.get_image_measurement_groups()
    assert group.tracking_identifier == "KneeScope quality control"
    return group


def report_with(tmp_path, **qc):
    """The jittered case's report built again with these qc entries (a results.json dict built here), validated."""
    case = jittered_mese_case()
    results = copy.deepcopy(case.results_json)
    results["qc"].pop("segmentation", None)  # only the verdict given here, if any
    results["qc"].update(qc)
    segs = [hd.seg.segread(case.files[name]) for name in ("jittered_seg.dcm", "jittered_subregions_seg.dcm")]
    report = build_measurement_report(case.result, results, segs)
    report.save_as(tmp_path / "sr.dcm")
    assert dciodvfy_errors(tmp_path / "sr.dcm") == []
    return hd.sr.srread(tmp_path / "sr.dcm")


def test_qc_warnings_are_text_findings_and_no_verdict_without_one(tmp_path):
    warnings = ["Femoral cartilage is split into 2 pieces; check the segmentation.", "A second warning."]
    group = quality_group(report_with(tmp_path, warnings=warnings))
    assert group.get_qualitative_evaluations() == []
    texts = [item.TextValue for item in group[0].ContentSequence if item.ValueType == "TEXT" and
             item.ConceptNameCodeSequence[0].CodeValue == "111052"]  # fmt: skip
    assert texts == warnings


def test_no_quality_group_without_warnings_or_verdict(tmp_path):
    assert report_with(tmp_path, warnings=[]).content.get_image_measurement_groups() == []


@pytest.mark.parametrize(("verdict", "code"), [("ok", "111237"), ("review", "111236"), ("failed", "111235")])
def test_segmentation_qc_verdict_becomes_a_coded_evaluation(verdict, code, tmp_path):
    """results.json's qc.segmentation as a dict built here, one per verdict."""
    report = report_with(tmp_path, segmentation={"score": 0.42, "verdict": verdict, "reasons": ["built here"]})
    (evaluation,) = quality_group(report).get_qualitative_evaluations()
    assert (evaluation.name.value, evaluation.value.value) == ("111050", code)
