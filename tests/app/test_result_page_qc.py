"""The app's result message names the segmentation verdict when it is not "ok" (and only then)."""

from __future__ import annotations

import dataclasses

from app.result_page import done_message
from pipeline import labels as L
from pipeline.quality import judge
from pipeline.quality.plausibility import Finding
from pipeline.segmentation.confidence import NetworkConfidence, StructureConfidence


def test_done_message_says_what_to_review(right_result):
    assert "segmentation" not in done_message(right_result, 24).lower()  # given labels, plausible: nothing to say
    structures = {n: StructureConfidence(500, 0.97, 200, 0.97, 1.0) for n in L.STRUCTURES}
    structures[L.FEMORAL_CARTILAGE] = StructureConfidence(500, 0.5, 200, 0.45, 1.1)
    tibia = Finding(L.TIBIA, "volume", "review", "tibia volume outside the usual range", 9000.0, ">= 20000 mm3")
    qc = judge([tibia], confidence=NetworkConfidence(structures), assessed=L.STRUCTURES, labels_given=False)
    message = done_message(dataclasses.replace(right_result, segmentation_qc=qc), 24)
    assert message.startswith("**Done**: right knee")
    assert "Review the segmentation: low confidence in femoral cartilage, tibia volume outside the usual range." in (
        message
    )
