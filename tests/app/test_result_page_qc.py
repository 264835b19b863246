"""The app's result banner names the segmentation verdict, its reasons, and when only the anatomy was checked."""

from __future__ import annotations

import dataclasses

from app import status
from pipeline import labels as L
from pipeline.quality import judge
from pipeline.quality.plausibility import Finding
from pipeline.segmentation.confidence import NetworkConfidence, StructureConfidence


def test_the_banner_says_what_to_review(right_result):
    plain = status.done(right_result.to_dict(), "label map supplied (not segmented)", 24)
    assert 'data-verdict="ok"' in plain and "Review the segmentation" not in plain  # given labels, plausible
    assert "Segmentation quality: ok (anatomy checks only, no network confidence)." in plain  # and it says so

    structures = {n: StructureConfidence(500, 0.97, 200, 0.97, 1.0) for n in L.STRUCTURES}
    structures[L.FEMORAL_CARTILAGE] = StructureConfidence(500, 0.5, 200, 0.45, 1.1)
    tibia = Finding(L.TIBIA, "volume", "review", "tibia volume outside the usual range", 9000.0, ">= 20000 mm3")
    qc = judge([tibia], confidence=NetworkConfidence(structures), assessed=L.STRUCTURES, labels_given=False)
    banner = status.done(dataclasses.replace(right_result, segmentation_qc=qc).to_dict(), "segmented", 24)
    assert 'class="ks-status ks-review"' in banner
    assert "Review the segmentation:" in banner and "anatomy checks only" not in banner  # the network was heard
    assert "low confidence in femoral cartilage" in banner and "tibia volume outside the usual range" in banner
