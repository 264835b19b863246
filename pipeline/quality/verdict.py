"""One verdict on a segmentation: a score 0-1, "ok" / "review" / "failed", the reasons, and the evidence per structure.

**Score.** With network confidence: the mean over the cartilage plates of each plate's *expected Dice*, the Dice
the network's own probabilities predict for its argmax, 2 * mean max-probability / (1 + soft-to-hard volume
ratio) (``segmentation.confidence``): with calibrated probabilities p, the expected overlap of the argmax with a
labelling drawn from p is sum(p over the argmax voxels) and the expected size of that labelling is the soft volume,
which gives this Dice (as a ratio of expectations). A missing plate counts 0. Without it (a given label map): 1.
Then each plausibility finding multiplies the score: by ``REVIEW_PENALTY`` ("review") or ``FAILED_PENALTY``
("failed").

**Verdict.** "failed" when a finding is "failed" or the score is below ``SCORE_FAILED``; otherwise "review" when
there is any reason (a finding, a structure the network is unsure of, mirrored predictions that disagree) or the
score is below ``SCORE_OK``; otherwise "ok". The thresholds were calibrated on the calibration half of the
benchmark's synthetic cases (bench/seg_qc.py ``--calibrate``) and checked on the other half (bench/RESULTS.md,
"Segmentation QC (issue 21)").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from .. import labels as L
from ..segmentation.confidence import NetworkConfidence, StructureConfidence
from .plausibility import FAILED, REVIEW, Finding

OK = "ok"
VERDICTS = (OK, REVIEW, FAILED)
#: Score thresholds, calibrated on the calibration seed set (``bench/seg_qc.py --set calibration --calibrate``: ok
#: = the middle of the thresholds that leave <= 2.5 % of true Dice < 0.7 above and <= 5 % of true Dice >= 0.9
#: below; failed = the best separation of true Dice < 0.5 from >= 0.7, at least 0.05 below ok).
SCORE_OK = 0.68
SCORE_FAILED = 0.60
#: A structure whose expected Dice is below this is named ("low confidence in ..."); bones are easier than the
#: thin cartilage plates and menisci, so they must reach more. Judgments (not calibrated): below every clean case's
#: values on the calibration set (cartilage >= 0.82, menisci >= 0.87, bones >= 0.93 there).
LOW_CONFIDENCE = {"cartilage": 0.65, "meniscus": 0.60, "bone": 0.80}
#: Share of a structure's voxels where a test-time-mirrored prediction disagrees, above which it is named.
MIRROR_DISAGREEMENT = 0.5
#: What each finding does to the score (judgments): a "review" finding costs a fifth, so several of them bring a
#: confident segmentation below SCORE_OK; a "failed" one leaves less than a third, below SCORE_FAILED.
REVIEW_PENALTY = 0.8
FAILED_PENALTY = 0.3
#: Per-structure network figures copied into results.json (``StructureConfidence.to_dict``).
NETWORK_KEYS = ("mean_probability", "boundary_probability", "soft_volume_ratio", "mirror_disagreement")
BASIS_NETWORK = "network confidence and anatomical plausibility"
BASIS_GIVEN = "anatomical plausibility only: the label map was given, so there is no network confidence"
BASIS_UNMEASURED = "anatomical plausibility only: the network's confidence was not measured"


def expected_dice(confidence: StructureConfidence) -> float:
    """The Dice the network's probabilities predict for its own argmax (0 when it labelled nothing)."""
    if not confidence.voxels or confidence.mean_probability is None or confidence.soft_volume_ratio is None:
        return 0.0
    return min(1.0, 2.0 * confidence.mean_probability / (1.0 + confidence.soft_volume_ratio))


@dataclass(frozen=True)
class StructureQC:
    """What the verdict saw of one structure: the network's confidence (None without it) and the findings."""

    expected_dice: float | None
    confidence: StructureConfidence | None
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict:
        """The same keys with or without the network (null without it), so every result has one shape."""
        network = self.confidence.to_dict() if self.confidence is not None else {}
        return {
            "expected_dice": None if self.expected_dice is None else round(self.expected_dice, 4),
            **{key: network.get(key) for key in NETWORK_KEYS},
            "findings": [f.reason for f in self.findings],
        }


@dataclass(frozen=True)
class SegmentationQC:
    """The segmentation's verdict (results.json ``qc.segmentation``; docs/results-schema.md)."""

    score: float
    verdict: str
    basis: str
    reasons: tuple[str, ...]
    per_structure: Mapping[str, StructureQC]
    findings: tuple[Finding, ...] = ()
    network: NetworkConfidence | None = field(default=None, compare=False)

    @property
    def network_assessed(self) -> bool:
        return self.network is not None

    def message(self) -> str:
        """One sentence for people: "Review the segmentation: low confidence in femoral cartilage, ..."."""
        listed = ", ".join(self.reasons)
        if self.verdict == FAILED:
            return f"The segmentation failed its quality check: {listed or 'low score'}. Its numbers are unreliable."
        if self.verdict == REVIEW:
            return f"Review the segmentation: {listed or 'low score'}."
        return "Segmentation quality check passed."

    def to_dict(self) -> dict:
        return {
            "score": round(self.score, 4),
            "verdict": self.verdict,
            "basis": self.basis,
            "reasons": list(self.reasons),
            "per_structure": {name: s.to_dict() for name, s in self.per_structure.items()},
            "findings": [f.to_dict() for f in self.findings],
            "thresholds": {"ok": SCORE_OK, "failed": SCORE_FAILED},
        }


def judge(
    findings: list[Finding],
    *,
    confidence: NetworkConfidence | None,
    assessed: Collection[str],
    labels_given: bool,
) -> SegmentationQC:
    """Combine the network's confidence and the plausibility findings into the verdict (module docstring)."""
    per_structure: dict[str, StructureQC] = {}
    reasons: list[str] = []
    unsure: list[tuple[float, str]] = []
    for name in L.STRUCTURES:
        if name not in assessed:
            continue
        own = tuple(f for f in findings if f.structure == name)
        structure_confidence = None if confidence is None else confidence.structures.get(name)
        dice = None if structure_confidence is None else expected_dice(structure_confidence)
        per_structure[name] = StructureQC(dice, structure_confidence, own)
        if dice is not None and structure_confidence is not None and structure_confidence.voxels:
            if dice < LOW_CONFIDENCE[_kind(name)]:
                unsure.append((dice, name))
            disagreement = structure_confidence.mirror_disagreement
            if disagreement is not None and disagreement > MIRROR_DISAGREEMENT:
                reasons.append(f"mirrored predictions disagree on {_pretty(name)}")
    reasons = [f"low confidence in {_pretty(name)}" for _, name in sorted(unsure)] + reasons
    reasons += list(dict.fromkeys(f.reason for f in sorted(findings, key=lambda f: f.level != FAILED)))
    if confidence is not None:
        plates = [per_structure[c].expected_dice or 0.0 for c in L.CARTILAGES if c in per_structure]
        score = sum(plates) / len(plates) if plates else 0.0
        basis = BASIS_NETWORK
    else:
        score, basis = 1.0, BASIS_GIVEN if labels_given else BASIS_UNMEASURED
    for finding in findings:
        score *= FAILED_PENALTY if finding.level == FAILED else REVIEW_PENALTY
    if any(f.level == FAILED for f in findings) or score < SCORE_FAILED:
        verdict = FAILED
    elif reasons or score < SCORE_OK:
        verdict = REVIEW
    else:
        verdict = OK
    return SegmentationQC(score, verdict, basis, tuple(reasons), per_structure, tuple(findings), confidence)


def _kind(name: str) -> str:
    return "bone" if name in L.BONES else "meniscus" if name in L.MENISCI else "cartilage"


def _pretty(name: str) -> str:
    return L.structure_display_name(name).lower()
