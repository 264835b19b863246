"""The DICOM-SEG on real and jittered series: written from the source frames' own positions, valid (dciodvfy),
read back with highdicom voxel for voxel; a refusal or failure shows in results.json, results.csv, the QC warnings
and the PDF."""

from __future__ import annotations

import csv
import json

import highdicom as hd
import numpy as np
import pytest

from pipeline import labels as L
from tests.fixtures.clinical import mese_case
from tests.fixtures.pacs import dciodvfy_errors, jittered_mese_case, real_mese_case

#: highdicom's refusals when a regular volume's voxels miss the series' by a fraction: translation or spacing.
NOT_A_VOXEL_MATCH = r"(?i)non-integer (multiple of voxel spacing|scale factor)"


def seg_of(case, key: str = "file"):
    return hd.seg.segread(case.files[case.results_json["dicom_seg"][key]])


def assert_seg_is_the_label_map(case) -> None:
    """Every segment of both SEGs, read back with highdicom by the source instances they reference, equals its
    voxels: the structures' SEG the label map, the subregions' SEG the femoral subregion map."""
    result, section = case.result, case.results_json["dicom_seg"]
    uids = [str(ds.SOPInstanceUID) for ds in result.image.source.echoes[0].headers]  # slice order of the labels
    for key, segments_key, array, values in (
        ("file", "segments", result.labels.array, L.CANONICAL),
        ("subregions_file", "subregion_segments", result.subregions.array, L.FEMORAL_SUBREGIONS),
    ):
        seg, segments = seg_of(case, key), section[segments_key]
        assert [item.SegmentLabel for item in seg.SegmentSequence] == list(segments.values())
        assert seg.SeriesInstanceUID == seg_of(case).SeriesInstanceUID  # one series, two instances
        assert seg.SegmentsOverlap == "NO"
        pixels = seg.get_pixels_by_source_instance(uids, assert_missing_frames_are_empty=True)
        assert pixels.shape == (*array.shape, len(segments))
        for n, name in enumerate(segments.values()):
            expected = array == values[name]
            assert expected.any(), name
            np.testing.assert_array_equal(pixels[..., n].astype(bool), expected, err_msg=name)
    assert list(section["segments"].values()) == list(L.STRUCTURES)
    assert list(section["subregion_segments"].values()) == list(L.FEMORAL_SUBREGIONS)


def assert_frames_sit_on_their_files(case, key: str = "file") -> None:
    """Each frame's position is its referenced source file's own ImagePositionPatient (not a regularised grid)."""
    seg = seg_of(case, key)
    positions = {
        str(ds.SOPInstanceUID): [float(v) for v in ds.ImagePositionPatient]
        for ds in case.result.image.source.echoes[0].headers
    }
    for item in seg.PerFrameFunctionalGroupsSequence:
        source = str(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        frame = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(frame, positions[source], atol=1e-6)


# --- the real GE MESE series --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_ge_mese_series_gets_a_valid_seg_equal_to_the_label_map():
    case = real_mese_case()
    with pytest.raises(RuntimeError, match=NOT_A_VOXEL_MATCH):
        match_regular_volume(case)  # the failure this replaces
    section = case.results_json["dicom_seg"]
    assert section["computed"] is True, section
    # the reader's regular grid and the scanner's positions differ by the series' jitter, about 1e-3 mm
    assert 1e-4 < section["max_slice_offset_mm"] < 0.01
    assert not [w for w in case.results_json["qc"]["warnings"] if "DICOM" in w]
    assert dciodvfy_errors(case.files[section["file"]]) == []
    assert dciodvfy_errors(case.files[section["subregions_file"]]) == []
    assert_seg_is_the_label_map(case)
    assert_frames_sit_on_their_files(case)
    assert_frames_sit_on_their_files(case, "subregions_file")


# --- a synthetic series with jittered positions and gaps ----------------------------------------------------------
def test_jittered_series_defeats_matching_a_regular_volume():
    """The fixture really is the case that failed: the jittered, gapped series' label map as a regular volume,
    matched onto the series' geometry as the SEG writer did before, is refused by highdicom."""
    case = jittered_mese_case()
    headers = list(case.result.image.source.echoes[0].headers)
    normal = np.cross(*np.reshape(np.asarray(headers[0].ImageOrientationPatient, float), (2, 3)))
    steps = np.diff([float(np.dot(normal, np.asarray(h.ImagePositionPatient, float))) for h in headers])
    assert 0 < np.ptp(steps) <= 4 * 0.001 * np.sqrt(3)  # jittered by the fixture's ±0.001 mm, no more
    assert float(headers[0].SliceThickness) < np.median(steps)  # gaps between the slices
    with pytest.raises(RuntimeError, match=NOT_A_VOXEL_MATCH):
        match_regular_volume(case)


def match_regular_volume(case):
    """What the SEG writer did before: the label map as a highdicom Volume, matched onto the series geometry."""
    from highdicom.spatial import get_series_volume_positions

    headers = list(case.result.image.source.echoes[0].headers)
    labels = case.result.labels
    spacing, positions = get_series_volume_positions(headers, rtol=1e-3)
    first = headers[positions.index(0)]
    geometry = hd.VolumeGeometry.from_attributes(
        image_position=first.ImagePositionPatient,
        image_orientation=first.ImageOrientationPatient,
        rows=int(first.Rows),
        columns=int(first.Columns),
        pixel_spacing=first.PixelSpacing,
        spacing_between_slices=spacing,
        number_of_frames=len(headers),
        coordinate_system="PATIENT",
    )
    volume = hd.Volume.from_components(
        labels.array.transpose(2, 1, 0),
        spacing=labels.spacing,
        direction=labels.direction.tolist(),
        position=labels.origin,
        coordinate_system="PATIENT",
    )
    return volume.match_geometry(geometry)


def test_jittered_gapped_series_gets_a_valid_seg_equal_to_the_label_map():
    case = jittered_mese_case()
    section = case.results_json["dicom_seg"]
    assert section["computed"] is True, section
    assert dciodvfy_errors(case.files[section["file"]]) == []
    assert dciodvfy_errors(case.files[section["subregions_file"]]) == []
    assert_seg_is_the_label_map(case)
    assert_frames_sit_on_their_files(case)
    assert_frames_sit_on_their_files(case, "subregions_file")


def test_seg_segments_carry_subregion_codes_and_the_knee_side():
    seg = seg_of(jittered_mese_case(), "subregions_file")
    by_label = {item.SegmentLabel: item for item in seg.SegmentSequence}
    item = by_label["femoral_medial_posterior"]
    assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == "309312004"  # cartilage
    region = item.AnatomicRegionSequence[0]
    assert region.CodeValue == "71341001"  # of the femur
    assert {m.CodeValue for m in region.AnatomicRegionModifierSequence} == {"255561001", "255551008"}
    side = item.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0]
    assert side.CodeValue == "24028007"  # right knee


# --- a refusal or a failure is visible everywhere ------------------------------------------------------------------
def pdf_text(path) -> str:
    from pypdf import PdfReader

    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(path).pages)


def test_forced_seg_failure_shows_in_json_csv_warnings_and_pdf(tmp_path, monkeypatch):
    from pipeline.report import dicom_outputs

    def broken(result, path):
        raise RuntimeError("forced writer failure")

    monkeypatch.setattr(dicom_outputs, "write_dicom_seg", broken)
    result = mese_case().result
    files = result.write(tmp_path, make_zip=False)
    data = json.loads(files["results.json"].read_text())
    section = data["dicom_seg"]
    assert section["computed"] is False and "forced writer failure" in section["reason"]
    assert not any(name.endswith(("_seg.dcm", "_sr.dcm")) for name in files)
    assert f"{result.case_id}_t2map.dcm" in files  # the T2 map needs no SEG
    warning = next(w for w in data["qc"]["warnings"] if w.startswith("DICOM-SEG not written"))
    assert "forced writer failure" in warning
    assert data["dicom_sr"]["computed"] is False and "No DICOM-SEG" in data["dicom_sr"]["reason"]
    with open(files["results.csv"], newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["dicom_seg_computed"] == "0" and "forced writer failure" in row["dicom_seg_reason"]
    assert warning in row["qc_warnings"] and row["n_qc_warnings"] == str(len(data["qc"]["warnings"]))
    text = pdf_text(files[f"{result.case_id}_report.pdf"])
    assert "DICOM objects: none. DICOM-SEG not written:" in text  # the summary line
    assert text.count("forced writer failure") >= 2  # and the QC warning


def test_written_seg_is_listed_in_the_csv_and_pdf():
    case = jittered_mese_case()
    with open(case.files["results.csv"], newline="") as handle:
        row = next(csv.DictReader(handle))
    assert (row["dicom_seg_computed"], row["dicom_sr_computed"], row["dicom_t2_map_computed"]) == ("1", "1", "1")
    assert row["dicom_seg_reason"] == ""
    text = pdf_text(case.files["jittered_report.pdf"])
    assert "DICOM objects: SEG written; SR measurement report written; T2 Parametric Map written" in text
