"""Clinical outputs: the DICOM-SEG (read back independently with pydicom, validated with dciodvfy), the PDF case
report (text extracted with pypdf, pages rendered with pdftoppm) and the flattened thickness maps."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest

from pipeline import labels as L
from pipeline.engine import analyze_labels
from pipeline.io import write_volume
from pipeline.report.dicom_seg import build_segmentation
from pipeline.report.report_content import region_name
from pipeline.report.thickness_maps import femoral_map, tibial_map
from tests.fixtures import qdess as qf
from tests.fixtures.clinical import CASE_ID, PATIENT, mese_case

SEG_CODES = {  # structure -> (category, type, anatomic region, region modifier)
    "femur": ("91723000", "71341001", None, None),
    "tibia": ("91723000", "12611008", None, None),
    "patella": ("91723000", "64234005", None, None),
    "femoral_cartilage": ("85756007", "309312004", "71341001", None),
    "medial_tibial_cartilage": ("85756007", "309312004", "12611008", "255561001"),
    "lateral_tibial_cartilage": ("85756007", "309312004", "12611008", "49370004"),
    "patellar_cartilage": ("85756007", "309312004", "64234005", None),
    "medial_meniscus": ("85756007", "74135004", "72696002", "255561001"),
    "lateral_meniscus": ("85756007", "74135004", "72696002", "49370004"),
}


@pytest.fixture(scope="module")
def case():
    return mese_case()


@pytest.fixture(scope="module")
def seg(case):
    return pydicom.dcmread(case.files[f"{CASE_ID}_seg.dcm"])


def decoded_frames(seg) -> dict[tuple[int, str], np.ndarray]:
    """(segment number, referenced source SOP instance UID) -> binary frame, read with pydicom alone."""
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
    frames = {}
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence, strict=True):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        frames[(number, str(source))] = frame.astype(bool)
    return frames


def test_seg_reads_back_to_the_label_map_for_every_segment(case, seg):
    labels = case.result.labels.array
    headers = case.result.image.source.echoes[0].headers  # slice order of the label map's k axis
    uid_to_slice = {str(h.SOPInstanceUID): k for k, h in enumerate(headers)}
    frames = decoded_frames(seg)
    assert {uid for _, uid in frames} <= set(uid_to_slice)  # every frame references a source instance
    names = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
    assert sorted(names.values()) == sorted(L.STRUCTURES)  # the names of label_table.json
    for number, structure in names.items():
        expected = labels == L.CANONICAL[structure]
        decoded = np.zeros_like(expected)
        for (seg_number, uid), frame in frames.items():
            if seg_number == number:
                decoded[uid_to_slice[uid]] = frame
        np.testing.assert_array_equal(decoded, expected, err_msg=structure)


def test_seg_references_the_source_series_and_carries_the_codes(case, seg):
    source = case.result.image.source
    first = source.first_header
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.series["series_instance_uid"]
    assert len(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == len(source.echoes[0].headers)
    assert seg.StudyInstanceUID == first.StudyInstanceUID and seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    table = L.label_table()["labels"]
    for item in seg.SegmentSequence:
        structure = item.SegmentLabel
        rgb = table[str(L.CANONICAL[structure])]["rgb"]
        assert np.allclose(
            hd.color.CIELabColor.from_dicom_value(item.RecommendedDisplayCIELabValue).to_rgb(), rgb, atol=1
        )
        category, kind, region, modifier = SEG_CODES[structure]
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == category
        type_item = item.SegmentedPropertyTypeCodeSequence[0]
        assert type_item.CodeValue == kind and type_item.CodingSchemeDesignator == "SCT"
        assert type_item.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "24028007"  # right knee
        if region is None:
            assert "AnatomicRegionSequence" not in item
        else:
            assert item.AnatomicRegionSequence[0].CodeValue == region
            modifiers = item.AnatomicRegionSequence[0].get("AnatomicRegionModifierSequence", [])
            assert [m.CodeValue for m in modifiers] == ([modifier] if modifier else [])
        algorithm = item.SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmName == "KneeScope" and "label map supplied" in algorithm.AlgorithmParameters


def test_seg_names_the_model_and_weights_revision_when_kneescope_segmented(case):
    segmentation = {"engine_model": "fullres", "revision": "0123456789abcdef0123456789abcdef01234567"}
    segmented = dataclasses.replace(case.result, provenance={**case.result.provenance, "segmentation": segmentation})
    item = build_segmentation(segmented).SegmentSequence[0]
    assert item.SegmentAlgorithmType == "AUTOMATIC"
    parameters = item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters
    assert "model=fullres" in parameters and f"weights_revision={segmentation['revision']}" in parameters


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy missing: apt-get install dicom3tools")
def test_seg_passes_dciodvfy(case):
    run = subprocess.run(["dciodvfy", str(case.files[f"{CASE_ID}_seg.dcm"])], capture_output=True, text=True)
    report = run.stdout + run.stderr
    assert "Segmentation" in report  # it recognised the IOD
    errors = [line for line in report.splitlines() if line.startswith("Error")]
    assert not errors, report


def test_results_json_describes_the_seg(case):
    section = case.results_json["dicom_seg"]
    assert section["computed"] is True and section["file"] == f"{CASE_ID}_seg.dcm"
    assert f"{CASE_ID}_seg.dcm" in case.results_json["files"]


def test_nifti_input_writes_no_seg_and_says_why(tmp_path):
    phantom = qf.make_qdess_phantom()
    image = write_volume(phantom.labels, tmp_path / "knee.nii.gz")
    files = analyze_labels(phantom.labels, image=image).write(tmp_path / "out", make_zip=False)
    assert not any(name.endswith("_seg.dcm") for name in files)
    section = json.loads(files["results.json"].read_text())["dicom_seg"]
    assert section["computed"] is False and "not from a classic DICOM series" in section["reason"]
    assert "knee_report.pdf" in files  # the report does not need DICOM


# --- the PDF case report ------------------------------------------------------------------------------------
def report_text(case) -> str:
    from pypdf import PdfReader

    reader = PdfReader(case.files[f"{CASE_ID}_report.pdf"])
    assert len(reader.pages) == 2
    return "\n".join(page.extract_text() for page in reader.pages)


def test_report_prints_every_region_with_its_results_json_numbers(case):
    lines = [" ".join(line.split()) for line in report_text(case).splitlines()]
    for region, entry in case.results_json["cartilage"].items():
        thickness = entry["thickness_mm"]
        t2 = case.results_json["t2"]["regions"][region]["mean"]
        expected = f"{region_name(region)} {thickness['mean']:.2f} {thickness['median']:.2f} {thickness['p95']:.2f}"
        row = next((line for line in lines if line.startswith(expected + " ")), None)
        assert row is not None, f"{expected!r} not in the report"
        assert f"{entry['volume_mm3']:.0f} {t2:.1f}" in row  # volumes without decimals, T2 with one


def test_report_shows_model_statement_and_no_patient_identifiers(case):
    text = report_text(case)
    assert "Research use only" in text and "label map supplied" in text and "QC warnings" in text
    raw = case.files[f"{CASE_ID}_report.pdf"].read_bytes()
    for value in ("Zyxwort", "Quillanne", PATIENT["PatientID"], PATIENT["PatientBirthDate"]):
        assert value.lower() not in text.lower()
        assert value.encode() not in raw  # nor in metadata or any stream left uncompressed
    assert pydicom.dcmread(case.files[f"{CASE_ID}_seg.dcm"]).PatientID == PATIENT["PatientID"]  # the SEG must


def test_report_redacts_identifiers_that_reach_a_printed_string(case, tmp_path):
    from pypdf import PdfReader

    from pipeline.report.pdf import write_case_report

    named = dataclasses.replace(case.result, case_id="Zyxwort_knee")  # an export named after the patient
    pdf = write_case_report(named, named.to_dict(), tmp_path / "r.pdf")
    text = "\n".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "Zyxwort" not in text and "[removed]_knee" in text


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm missing: apt-get install poppler-utils")
def test_report_pages_render_non_blank(case, tmp_path):
    from PIL import Image

    subprocess.run(["pdftoppm", "-r", "40", "-png", str(case.files[f"{CASE_ID}_report.pdf"]), str(tmp_path / "p")])
    pages = sorted(tmp_path.glob("p*.png"))
    assert len(pages) == 2
    for page in [*pages, case.files[f"{CASE_ID}_report.png"]]:
        grey = np.asarray(Image.open(page).convert("L"), dtype=float)
        assert (grey < 200).mean() > 0.05 and grey.std() > 20, page.name  # pictures and text, not a blank page


# --- flattened thickness maps -------------------------------------------------------------------------------
def test_flat_maps_show_the_true_thickness_with_medial_on_the_left(right_result):
    tibia, femur = right_result.surfaces["tibia"], right_result.surfaces["femur"]
    flat = tibial_map(tibia, medial_sign=1.0)
    assert flat.mean_mm == pytest.approx(2.0, abs=0.1)  # the phantom's tibial cartilage is 2 mm
    assert femoral_map(femur, medial_sign=1.0).mean_mm == pytest.approx(2.0, abs=0.1)
    medial_only = dataclasses.replace(
        tibia,
        point_data={
            **tibia.point_data,
            "region": np.where(
                tibia.point_data["region"] == L.REGION_IDS["medial_tibial"], tibia.point_data["region"], 0
            ),
        },
    )
    medial = tibial_map(medial_only, medial_sign=1.0)
    assert np.isfinite(medial.values).sum() > 50
    assert (medial.extent[0] + medial.extent[1]) / 2 < (flat.extent[0] + flat.extent[1]) / 2  # left of centre
