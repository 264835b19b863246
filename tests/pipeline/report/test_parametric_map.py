"""The T2 map as a DICOM Parametric Map: valid (dciodvfy), float values in UCUM ms, read back frame by frame through
the source instances it references and equal to t2map.nii.gz within 0.05 ms; none, with the reason, without T2."""

from __future__ import annotations

import json

import highdicom as hd
import numpy as np
import pytest
import SimpleITK as sitk

from tests.fixtures.pacs import dciodvfy_errors, jittered_mese_case, real_mese_case


def assert_map_equals_the_nifti(case) -> None:
    section = case.results_json["dicom_t2_map"]
    assert section["computed"] is True and section["units"] == "ms"
    parametric_map = hd.pm.ParametricMap.from_dataset(hd.imread(case.files[section["file"]]))
    mapping = parametric_map.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "ms"
    assert mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0].CodeValue == "113065"  # DCM T2
    assert (float(mapping.RealWorldValueSlope), float(mapping.RealWorldValueIntercept)) == (1.0, 0.0)
    shape = (int(parametric_map.NumberOfFrames), int(parametric_map.Rows), int(parametric_map.Columns))
    frames = np.frombuffer(parametric_map.FloatPixelData, dtype="<f4").reshape(shape)
    nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(case.files["t2map.nii.gz"])))  # [k, j, i] like the map
    slice_of = {str(ds.SOPInstanceUID): k for k, ds in enumerate(case.result.image.source.echoes[0].headers)}
    placed = np.full(nifti.shape, np.nan, dtype=np.float32)
    for frame, item in zip(frames, parametric_map.PerFrameFunctionalGroupsSequence, strict=True):
        source = str(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        placed[slice_of[source]] = frame
    assert not np.isnan(placed).any()  # every slice has its frame
    assert np.abs(placed - nifti).max() <= 0.05
    assert nifti.max() > 20  # a real T2 map, not zeros


def test_t2_map_of_the_jittered_series_is_valid_and_equals_the_nifti():
    case = jittered_mese_case()
    assert dciodvfy_errors(case.files["jittered_t2map.dcm"]) == []
    assert_map_equals_the_nifti(case)


@pytest.mark.slow
def test_t2_map_of_the_real_ge_mese_series_is_valid_and_equals_the_nifti():
    case = real_mese_case()
    assert dciodvfy_errors(case.files["ge_mese_t2map.dcm"]) == []
    assert_map_equals_the_nifti(case)


def test_no_t2_map_without_t2_and_no_warning_for_it(tmp_path):
    """T2 switched off: the SEG and SR are written, the map is not, results.json says why, no QC warning."""
    from pipeline.engine import analyze_labels

    case = jittered_mese_case()
    result = analyze_labels(case.result.labels, image=case.result.image, t2=False, case_id="no_t2")
    files = result.write(tmp_path, make_zip=False)
    data = json.loads(files["results.json"].read_text())
    assert data["dicom_seg"]["computed"] and data["dicom_sr"]["computed"]
    assert data["dicom_t2_map"]["computed"] is False and "T2 was not computed" in data["dicom_t2_map"]["reason"]
    assert "no_t2_t2map.dcm" not in files
    assert not [w for w in data["qc"]["warnings"] if "DICOM" in w]
