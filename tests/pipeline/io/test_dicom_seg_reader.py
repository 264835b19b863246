"""A DICOM-SEG read back as a label map (``--labels seg.dcm``): KneeScope's own SEG gives the identical analysis;
a SEG written here with highdicom, segments in another order with other numbers, generic codes and an extra
segment, gives the same; a SEG of another series, an MR image given as labels and overlapping structures are
refused; without a DICOM image the SEG is placed by its frames' positions."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from pipeline import labels as L
from pipeline.engine import analyze_labels
from pipeline.errors import GeometryMismatchError, InvalidInputError
from pipeline.io import align_to_grid, load_image, load_label_map, write_volume
from pipeline.io.grids import embed_on_grid
from tests.fixtures.clinical import mese_case
from tests.fixtures.pacs import jittered_mese_case

NUMBERS = ("structures", "cartilage", "laterality", "t2")
#: highdicom copies the synthetic series' single-component "ANONYMOUS" patient name, and says so.
pytestmark = pytest.mark.filterwarnings("ignore:.*unlikely to represent the intended person name:UserWarning")


def own_seg() -> Path:
    case = jittered_mese_case()
    return case.files[case.results_json["dicom_seg"]["file"]]


def echo1_headers(series: Path) -> list:
    """Echo 1's files of a series, read here with pydicom alone, in slice order (along the slice normal)."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(series.glob("*.dcm"))]
    headers = [ds for ds in headers if int(ds.EchoNumbers) == 1]
    for ds in headers:  # Type 2 patient/study attributes the synthetic series leaves out: empty, as allowed
        for keyword in ("PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate", "StudyTime"):
            if keyword not in ds:
                setattr(ds, keyword, "")
        ds.ReferringPhysicianName = ds.get("ReferringPhysicianName", "")
    normal = np.cross(*np.reshape(np.asarray(headers[0].ImageOrientationPatient, float), (2, 3)))
    return sorted(headers, key=lambda ds: float(np.dot(normal, np.asarray(ds.ImagePositionPatient, float))))


def description(number: int, label: str, category, kind, region=None, modifier=None):
    item = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label,
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type="MANUAL",
        anatomic_regions=None if region is None else [region],
    )
    if modifier is not None:
        item.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [hd.sr.CodedConcept(*modifier)]
    return item


def write_seg(path: Path, series: Path, masks: list[np.ndarray], descriptions: list) -> Path:
    """A BINARY SEG written with highdicom from stacked masks (slices, rows, columns) on the series' echo 1."""
    seg = hd.seg.Segmentation(
        source_images=echo1_headers(series),
        pixel_array=np.stack(masks, axis=-1).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=77,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="a viewer",
        manufacturer_model_name="corrections",
        software_versions="1",
        device_serial_number="1",
    )
    seg.save_as(path)
    return path


def sections(data: dict) -> dict:
    return {key: data[key] for key in NUMBERS}


# --- KneeScope's own SEG --------------------------------------------------------------------------------------------
def test_cli_analyze_with_its_own_seg_gives_the_identical_label_map_and_numbers(tmp_path):
    from pipeline.cli import main

    case = jittered_mese_case()
    out = tmp_path / "out"
    argv = ["analyze", str(case.series), "--labels", str(own_seg()), "--out", str(out), "--no-zip", "-q"]
    assert main([*argv, "--case-id", "again"]) == 0
    again = load_label_map(out / "labels.nrrd", "canonical").volume
    np.testing.assert_array_equal(again.array, case.result.labels.array)
    data = json.loads((out / "results.json").read_text())
    assert sections(data) == sections(case.results_json)
    assert data["qc"]["warnings"] == case.results_json["qc"]["warnings"]
    given = data["input"]["labels"]
    assert given["source_format"] == "DICOM-SEG" and given["label_scheme"] == "dicom-seg"
    assert data["dicom_seg"]["computed"]  # and a new SEG of the new analysis


def test_reordered_renumbered_seg_with_generic_codes_gives_the_same_analysis(tmp_path):
    case = jittered_mese_case()
    labels = case.result.labels.array

    def mask(name: str) -> np.ndarray:
        return labels == L.CANONICAL[name]

    stray = np.zeros_like(labels, dtype=bool)
    stray[0, :3, :3] = True  # a corner of background: a segment that is no knee structure
    assert not (labels[stray]).any()
    tissue, sct = codes.SCT.Tissue, codes.SCT
    lateral, medial = ("49370004", "SCT", "Lateral"), ("255561001", "SCT", "Medial")
    old_category = hd.sr.CodedConcept("123037004", "SCT", "Anatomical Structure")  # before 2019
    fibula = hd.sr.CodedConcept("87342007", "SCT", "Fibula")
    segments = [
        (mask("lateral_meniscus"), description(1, "LM", tissue, sct.Meniscus, sct.Knee, lateral)),
        (mask("femoral_cartilage"), description(2, "cartilage 1", tissue, sct.Cartilage, sct.Femur)),
        (mask("tibia"), description(3, "Tibia bone", tissue, tissue)),  # generic codes: by its label
        (mask("medial_tibial_cartilage"), description(4, "MTC", tissue, tissue)),
        (stray, description(5, "fibula", sct.AnatomicalStructure, fibula)),
        (mask("patella"), description(6, "P", sct.AnatomicalStructure, sct.Patella)),
        (mask("femur"), description(7, "F", old_category, sct.Femur)),
        (mask("lateral_tibial_cartilage"), description(8, "x", tissue, sct.Cartilage, sct.Tibia, lateral)),
        (mask("patellar_cartilage"), description(9, "Patellar Cartilage", tissue, tissue)),
        (mask("medial_meniscus"), description(10, "y", tissue, sct.Meniscus, sct.Knee, medial)),
    ]
    seg_path = write_seg(tmp_path / "viewer_seg.dcm", case.series, [m for m, _ in segments], [d for _, d in segments])
    result = analyze_labels(seg_path, image=case.series, t2=False)
    np.testing.assert_array_equal(result.labels.array, labels)
    data = result.to_dict()
    for key in ("structures", "cartilage", "laterality"):
        assert data[key] == case.results_json[key], key
    ignored = [w for w in data["qc"]["warnings"] if w.startswith("Label values not named")]
    assert ignored == ["Label values not named by the label scheme were ignored: 5 (9 voxels)."]
    note = result.provenance["scheme_note"]
    assert "3 'Tibia bone' -> tibia (by its label)" in note and "5 'fibula' -> ignored" in note


# --- refusals -------------------------------------------------------------------------------------------------------
def test_seg_of_another_series_is_refused():
    other = mese_case().result.image  # a series of the same grid, but another series
    labels = load_label_map(own_seg(), "auto").volume
    with pytest.raises(GeometryMismatchError, match="references a different series than the image given"):
        align_to_grid(labels, other)


def test_an_mr_image_given_as_labels_is_refused():
    one_file = sorted(jittered_mese_case().series.glob("*.dcm"))[0]
    with pytest.raises(InvalidInputError, match="must be a DICOM Segmentation"):
        load_label_map(one_file, "auto")


def test_overlapping_segments_of_two_structures_are_refused(tmp_path):
    case = jittered_mese_case()
    femur = case.result.labels.array == L.CANONICAL["femur"]
    seg_path = write_seg(
        tmp_path / "overlap.dcm",
        case.series,
        [femur, femur],
        [
            description(1, "a", codes.SCT.AnatomicalStructure, codes.SCT.Femur),
            description(2, "b", codes.SCT.AnatomicalStructure, codes.SCT.Tibia),
        ],
    )
    with pytest.raises(InvalidInputError, match="tibia and femur segments overlap"):
        load_label_map(seg_path, "auto")


# --- placed by positions ------------------------------------------------------------------------------------------
def test_seg_alone_lies_on_its_own_grid_and_a_nifti_image_takes_it_by_positions(tmp_path):
    case = jittered_mese_case()
    loaded = load_label_map(own_seg(), "auto")
    own = loaded.volume
    assert own.meta["source_format"] == "DICOM-SEG" and loaded.scheme.name == "dicom-seg"
    assert own.array.shape[0] < case.result.labels.array.shape[0]  # empty frames are left out of a SEG
    placed = embed_on_grid(own, case.result.image)
    np.testing.assert_array_equal(placed.array, case.result.labels.array)
    nifti = load_image(write_volume(case.result.image, tmp_path / "image.nii.gz"))  # no DICOM headers
    on_nifti, note = align_to_grid(own, nifti)
    np.testing.assert_array_equal(on_nifti.array, case.result.labels.array)
    assert "by its frames' positions" in note
