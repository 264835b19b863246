"""The QC stage inside the engine's analysis, end to end: the built-in example is "ok" (segmented or given), a
segmentation of an inverted-contrast knee is flagged and still returned, and on the real data of the mskt sdist
(skipped when absent) a given real label map is "ok" and the real GE MESE series segmented by the demo model is not."""

from __future__ import annotations

import pytest

from bench.mskt_data import SAG_3D_DESS
from pipeline import labels as L
from tests.fixtures.mskt import mskt_file
from tests.fixtures.quality import demo_analysis, demo_engine, example_analysis


def test_built_in_example_segmented_by_the_demo_model_is_ok():
    _, result = example_analysis()
    qc = result.segmentation_qc
    assert qc.verdict == "ok" and qc.reasons == () and "network confidence" in qc.basis, qc.reasons
    section = result.to_dict()["qc"]["segmentation"]
    assert section["verdict"] == "ok" and 0.8 <= section["score"] <= 1.0
    assert all(section["per_structure"][s]["expected_dice"] > 0.8 for s in L.CARTILAGES)


def test_given_labels_get_plausibility_only_and_say_so(right_result):
    section = right_result.to_dict()["qc"]["segmentation"]
    assert section["verdict"] == "ok" and section["score"] == 1.0
    assert "plausibility only" in section["basis"] and "label map was given" in section["basis"]
    assert all(entry["expected_dice"] is None for entry in section["per_structure"].values())
    row = right_result.csv_row()
    assert row["qc_segmentation_verdict"] == "ok" and "plausibility only" in row["qc_segmentation_basis"]
    assert row["femoral_cartilage_expected_dice"] == ""


def test_inverted_contrast_is_flagged_and_still_returned():
    """An inverted image (the demo model finds almost no cartilage): "failed" with its reasons, and the images and
    the label map come back so that the user can see why."""
    case, result = demo_analysis("inversion", 1.0, seed=4, coarse=True)
    qc = result.segmentation_qc
    assert qc.verdict in ("review", "failed") and qc.reasons, qc.reasons
    assert qc.score < 0.5
    assert result.image is case.image and result.labels.array.shape == case.image.array.shape
    assert "low confidence" in " ".join(qc.reasons) or "missing" in " ".join(qc.reasons)


@pytest.mark.slow
def test_real_label_map_given_is_ok():
    from pipeline.engine import analyze_labels

    path = mskt_file("SAG_3D_DESS_RIGHT_bones_cart_men_fib-label.nrrd")
    scheme = SAG_3D_DESS
    qc = analyze_labels(path, scheme=scheme).segmentation_qc
    assert qc.verdict == "ok" and qc.findings == () and qc.network is None, qc.reasons


@pytest.mark.slow
def test_real_mese_series_segmented_by_the_demo_model_is_not_ok():
    """A real GE MESE T2 series (4 mm slices, spin-echo contrast): the demo model, trained on synthetic DESS-like
    knees, fails on it; the analysis returns it marked, with its reasons."""
    result = demo_engine().analyze(mskt_file("MESE_T2_dicom_data_anon"), t2=False)
    qc = result.segmentation_qc
    assert qc.verdict in ("review", "failed") and qc.reasons
    assert "Review the segmentation" in qc.message() or "failed its quality check" in qc.message()
