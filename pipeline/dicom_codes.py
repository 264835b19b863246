"""Coded concepts of the DICOM objects KneeScope writes (SEG, SR, Parametric Map) and reads (SEG).

Every code is taken from DICOM PS3.16 (the Content Mapping Resource), as pydicom 3 carries it in
``pydicom.sr.codedict``; the context group (CID) that lists it is named beside it, and docs/results-schema.md
repeats the table. SNOMED CT has no code for "femoral cartilage" or for the femoral subregions: they are
post-coordinated, Cartilage with the bone as anatomic region and CID 2 anatomic modifiers (next-wave-notes,
"DICOM-SEG"). Plain tuples, so that importing this module imports no DICOM library.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import labels as L


@dataclass(frozen=True)
class Concept:
    """One coded concept: code value, coding scheme designator, code meaning."""

    value: str
    scheme: str
    meaning: str

    def code(self):
        """As a highdicom CodedConcept (what highdicom's constructors take)."""
        from highdicom.sr import CodedConcept

        return CodedConcept(self.value, self.scheme, self.meaning)


# --- segmentation categories and types (CID 7150, 7151, 7166) and anatomy (CID 4, 7304) -----------------------
ANATOMICAL_STRUCTURE = Concept("91723000", "SCT", "Anatomical Structure")  # CID 7150 (123037004 before 2019)
TISSUE = Concept("85756007", "SCT", "Tissue")  # CID 7150
CARTILAGE = Concept("309312004", "SCT", "Cartilage")  # CID 7166
MENISCUS = Concept("74135004", "SCT", "Meniscus")  # CID 7166
BONE = Concept("3138006", "SCT", "Bone")  # CID 7166 (read only: a "Bone" segment with a bone as its region)
FEMUR = Concept("71341001", "SCT", "Femur")  # CID 4, 7151
TIBIA = Concept("12611008", "SCT", "Tibia")  # CID 4, 7151
PATELLA = Concept("64234005", "SCT", "Patella")  # CID 4, 7151
KNEE = Concept("72696002", "SCT", "Knee")  # CID 4
BONE_CONCEPTS = {L.FEMUR: FEMUR, L.TIBIA: TIBIA, L.PATELLA: PATELLA}
#: Codes other tools (and older PS3.16 editions) use for the same concepts, accepted when reading a SEG.
SYNONYMS = {"123037004": ANATOMICAL_STRUCTURE.value, "272673000": BONE.value}
# --- modifiers: laterality (CID 244) and anatomic modifiers (CID 2) ------------------------------------------
LEFT = Concept("7771000", "SCT", "Left")
RIGHT = Concept("24028007", "SCT", "Right")
SIDES = {"left": LEFT, "right": RIGHT}
MEDIAL = Concept("255561001", "SCT", "Medial")
LATERAL = Concept("49370004", "SCT", "Lateral")
ANTERIOR = Concept("255549009", "SCT", "Anterior")
POSTERIOR = Concept("255551008", "SCT", "Posterior")
DISTAL = Concept("46053002", "SCT", "Distal")


@dataclass(frozen=True)
class SegmentCoding:
    """How one structure or femoral subregion is coded in a SEG segment (and an SR finding site)."""

    category: Concept
    kind: Concept
    region: Concept | None = None  # None: the type is the anatomy itself (bones)
    modifiers: tuple[Concept, ...] = ()


#: Structures, then the femoral subregions (trochlea = anterior, weight-bearing = distal, posterior = posterior).
SEGMENT_CODING: dict[str, SegmentCoding] = {
    **{bone: SegmentCoding(ANATOMICAL_STRUCTURE, code) for bone, code in BONE_CONCEPTS.items()},
    L.FEMORAL_CARTILAGE: SegmentCoding(TISSUE, CARTILAGE, FEMUR),
    L.MEDIAL_TIBIAL_CARTILAGE: SegmentCoding(TISSUE, CARTILAGE, TIBIA, (MEDIAL,)),
    L.LATERAL_TIBIAL_CARTILAGE: SegmentCoding(TISSUE, CARTILAGE, TIBIA, (LATERAL,)),
    L.PATELLAR_CARTILAGE: SegmentCoding(TISSUE, CARTILAGE, PATELLA),
    L.MEDIAL_MENISCUS: SegmentCoding(TISSUE, MENISCUS, KNEE, (MEDIAL,)),
    L.LATERAL_MENISCUS: SegmentCoding(TISSUE, MENISCUS, KNEE, (LATERAL,)),
    "femoral_trochlea": SegmentCoding(TISSUE, CARTILAGE, FEMUR, (ANTERIOR,)),
    "femoral_medial_weight_bearing": SegmentCoding(TISSUE, CARTILAGE, FEMUR, (MEDIAL, DISTAL)),
    "femoral_lateral_weight_bearing": SegmentCoding(TISSUE, CARTILAGE, FEMUR, (LATERAL, DISTAL)),
    "femoral_medial_posterior": SegmentCoding(TISSUE, CARTILAGE, FEMUR, (MEDIAL, POSTERIOR)),
    "femoral_lateral_posterior": SegmentCoding(TISSUE, CARTILAGE, FEMUR, (LATERAL, POSTERIOR)),
}

# --- the measurement report (TID 1500) --------------------------------------------------------------------------
LENGTH = Concept("410668003", "SCT", "Length")  # CID 7470 linear measurement: thickness along the bone normal
VOLUME = Concept("118565006", "SCT", "Volume")  # CID 7469
T2 = Concept("113065", "DCM", "T2")  # CID 7469, 7180
MEAN = Concept("373098007", "SCT", "Mean")  # CID 7464 derivation
MEDIAN = Concept("373099004", "SCT", "Median")  # CID 7464 derivation
MILLIMETRE = Concept("mm", "UCUM", "mm")  # CID 7181
CUBIC_MILLIMETRE = Concept("mm3", "UCUM", "cubic millimeter")  # CID 7181
MILLISECOND = Concept("ms", "UCUM", "millisecond")  # CID 7181
MRI_PROCEDURE = Concept("25056-3", "LN", "MRI unspecified body region")  # CID 100 procedure reported
ARTIFICIAL_INTELLIGENCE = Concept("123110", "DCM", "Artificial Intelligence")  # CID 7162 algorithm family
QUALITY_ASSESSMENT = Concept("111050", "DCM", "Quality Assessment")  # qualitative evaluation name
QUALITY_FINDING = Concept("111052", "DCM", "Quality Finding")  # a QC warning's text
#: qc.segmentation.verdict -> CID 6044 (Image Quality Assessment Type).
VERDICTS = {
    "ok": Concept("111237", "DCM", "Usable - Meets the quality control standard"),
    "review": Concept("111236", "DCM", "Usable - Does not meet the quality control standard"),
    "failed": Concept("111235", "DCM", "Unusable - Quality renders image unusable"),
}
TOPOGRAPHICAL_MODIFIER = Concept("106233006", "SCT", "Topographical modifier")  # CID 210 (finding site modifier)
