"""The verdict: score, level and reasons from network confidence and plausibility findings (clear good and bad
cases built from known confidences), and the message people read."""

from __future__ import annotations

import pytest

from pipeline import labels as L
from pipeline.quality import judge
from pipeline.quality.plausibility import Finding
from pipeline.quality.verdict import (
    BASIS_GIVEN,
    BASIS_NETWORK,
    FAILED_PENALTY,
    LOW_CONFIDENCE,
    REVIEW_PENALTY,
    SCORE_FAILED,
    SCORE_OK,
)
from pipeline.segmentation.confidence import NetworkConfidence, StructureConfidence


def confidence(probability: float = 0.97, ratio: float = 1.0, **overrides: float) -> NetworkConfidence:
    """Every structure with mean max-probability ``probability`` and soft-volume ratio ``ratio`` (expected Dice
    2p / (1 + r)); ``overrides`` give single structures another probability."""
    structures = {}
    for name in L.STRUCTURES:
        p = overrides.get(name, probability)
        structures[name] = StructureConfidence(1000, p, 400, p, ratio)
    return NetworkConfidence(structures, (1.0, 1.0, 1.0))


def test_confident_plausible_segmentation_is_ok():
    qc = judge([], confidence=confidence(0.95), assessed=L.STRUCTURES, labels_given=False)
    assert qc.verdict == "ok" and qc.reasons == () and qc.basis == BASIS_NETWORK
    assert qc.score == pytest.approx(0.95) and qc.score >= SCORE_OK
    assert qc.per_structure[L.FEMORAL_CARTILAGE].expected_dice == pytest.approx(0.95)
    assert qc.message() == "Segmentation quality check passed."


def test_one_unsure_plate_asks_for_review_and_names_it():
    unsure = LOW_CONFIDENCE["cartilage"] - 0.05
    findings = [Finding(L.TIBIA, "volume", "review", "tibia volume outside the usual range", 9000.0, ">= 20000 mm3")]
    qc = judge(findings, confidence=confidence(0.95, femoral_cartilage=unsure), assessed=L.STRUCTURES,
               labels_given=False)  # fmt: skip
    assert qc.verdict == "review"
    assert qc.reasons == ("low confidence in femoral cartilage", "tibia volume outside the usual range")
    assert qc.score == pytest.approx((3 * 0.95 + unsure) / 4 * REVIEW_PENALTY)
    assert qc.message() == (
        "Review the segmentation: low confidence in femoral cartilage, tibia volume outside the usual range."
    )
    assert qc.per_structure[L.TIBIA].findings == tuple(findings)


def test_unsure_network_or_a_failed_finding_fails():
    unsure = judge([], confidence=confidence(0.3), assessed=L.STRUCTURES, labels_given=False)
    assert unsure.verdict == "failed" and unsure.score < SCORE_FAILED
    assert "failed its quality check" in unsure.message() and "unreliable" in unsure.message()
    knee = [Finding(None, "knee", "failed", "not a knee: femur is fragmented")]
    broken = judge(knee, confidence=confidence(0.97), assessed=L.STRUCTURES, labels_given=False)
    assert broken.verdict == "failed" and broken.score == pytest.approx(0.97 * FAILED_PENALTY)
    assert broken.reasons == ("not a knee: femur is fragmented",)


def test_mirrored_disagreement_is_a_reason():
    structures = dict(confidence(0.97).structures)
    structures[L.PATELLA] = StructureConfidence(1000, 0.97, 400, 0.97, 1.0, mirror_disagreement=0.8)
    qc = judge([], confidence=NetworkConfidence(structures, mirror_axes=(0, 1, 2)), assessed=L.STRUCTURES,
               labels_given=False)  # fmt: skip
    assert qc.verdict == "review" and qc.reasons == ("mirrored predictions disagree on patella",)


def test_given_labels_get_plausibility_only_and_say_so():
    assessed = set(L.STRUCTURES) - set(L.MENISCI)
    clean = judge([], confidence=None, assessed=assessed, labels_given=True)
    assert clean.verdict == "ok" and clean.score == 1.0 and clean.basis == BASIS_GIVEN
    assert "plausibility only" in clean.basis and "given" in clean.basis
    assert set(clean.per_structure) == assessed
    assert all(s.expected_dice is None and s.confidence is None for s in clean.per_structure.values())
    row = clean.to_dict()["per_structure"][L.FEMUR]
    assert row["expected_dice"] is None and row["mean_probability"] is None and row["findings"] == []
    odd = [Finding(L.PATELLA, "width", "review", "patella width outside the usual range", 70.0, "28-65 mm")]
    flagged = judge(odd, confidence=None, assessed=assessed, labels_given=True)
    assert flagged.verdict == "review" and flagged.score == pytest.approx(REVIEW_PENALTY)
