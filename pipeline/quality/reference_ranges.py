"""What a knee's label map usually measures: the ranges the plausibility checks compare against (pure data).

Each quantity has a *usual* range (outside it: "review") and a *possible* range (outside it: "failed": no adult
knee measures that). The usual ranges are deliberately wide envelopes, not reference intervals: they must hold
small and large adults, osteoarthritic cartilage loss, and knees imaged with a small field of view, so that a
correct segmentation is hardly ever sent for review on anatomy alone (the network's confidence does the fine
work). They are anchored on two kinds of evidence, cited per range below:

* **The three real label maps** of the mskt 0.1.22 source distribution (MIT; ``pip download --no-deps
  mskt==0.1.22``): ``right_knee_example.nrrd`` and ``SAG_3D_DESS_RIGHT_bones_cart_men_fib-label.nrrd`` (sagittal
  3-D DESS, 0.36 x 0.36 x 0.7 mm) and ``Par_Rec_T2_Test/T2-label.nrrd`` (0.35 mm isotropic), measured with
  ``analyze_labels`` (bench/seg_qc.py ``--real-labels`` prints these figures; the maps themselves are not in the
  repository). Written below as "mskt maps: a / b / c" in that order.
* **The literature** on healthy and osteoarthritic adult knees (quantitative 3-D MRI; intra-operative and
  anthropometric measurements), named per range.

The synthetic phantom (``pipeline.synthetic``) is a knee of adult proportions with thin bones: its values lie
inside every usual range, so the built-in example is "ok".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .. import labels as L


@dataclass(frozen=True)
class Range:
    """A usual range [low, high] and a possible range beyond which no knee lies (None: unbounded on that side)."""

    low: float | None
    high: float | None
    possible_low: float | None
    possible_high: float | None
    source: str

    def level(self, value: float) -> str | None:
        """None inside the usual range, 'review' outside it, 'failed' outside the possible range."""
        if (self.possible_low is not None and value < self.possible_low) or (
            self.possible_high is not None and value > self.possible_high
        ):
            return "failed"
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return "review"
        return None

    def describe(self, unit: str) -> str:
        if self.high is None:
            return f">= {self.low:g} {unit}"
        if self.low is None:
            return f"<= {self.high:g} {unit}"
        return f"{self.low:g}-{self.high:g} {unit}"


_ECKSTEIN_2001 = (
    "Eckstein F, Winzheimer M, Hohe J, Englmeier KH, Reiser M. Interindividual variability and correlation among "
    "morphological parameters of knee joint cartilage plates: analysis with three-dimensional MR imaging. "
    "Osteoarthritis Cartilage 2001;9:101-111 (healthy adults: femoral cartilage volumes of several to over ten ml, "
    "each tibial plate and the patella of one to a few ml)"
)
_BLOECKER_2013 = (
    "Bloecker K, Guermazi A, Wirth W, et al. Tibial coverage, meniscus position, size and damage in knees "
    "discordant for joint space narrowing - data from the Osteoarthritis Initiative. Osteoarthritis Cartilage "
    "2013;21:419-427 (meniscus volumes of the order of 2-3 ml)"
)
_HITT_2003 = (
    "Hitt K, Shurman JR, Greene K, et al. Anthropometric measurements of the human knee: correlation to the sizing "
    "of current knee arthroplasty systems. J Bone Joint Surg Am 2003;85-A Suppl 4:115-122 (distal femoral and "
    "proximal tibial mediolateral widths of adults, women and men, about 55-90 mm)"
)
_BALDWIN_2005 = (
    "Baldwin JL, House CK. Anatomic dimensions of the patella measured during total knee arthroplasty. "
    "J Arthroplasty 2005;20:883-886 (patellar widths of about 40-50 mm)"
)

#: Volume (mm^3) of each structure. Bones: lower bounds only (how much shaft is imaged depends on the field of
#: view); "possible" lower bounds below which nothing is a bone are those of the knee check (postprocess.py).
VOLUME_MM3: Mapping[str, Range] = MappingProxyType(
    {
        L.FEMUR: Range(25_000, None, 5_000, None, "mskt maps: 217 / 143 / 177 cm3 (field-of-view dependent)"),
        L.TIBIA: Range(20_000, None, 5_000, None, "mskt maps: 126 / 101 / 130 cm3 (field-of-view dependent)"),
        L.PATELLA: Range(5_000, 45_000, 1_500, 90_000, f"mskt maps: 20.6 / 13.4 / 19.7 cm3; {_BALDWIN_2005}"),
        L.FEMORAL_CARTILAGE: Range(
            4_000, 30_000, 1_000, 60_000, f"mskt maps: 14.7 / 11.8 / 12.8 cm3; {_ECKSTEIN_2001}"
        ),
        L.MEDIAL_TIBIAL_CARTILAGE: Range(
            600, 5_500, 150, 11_000, f"mskt maps: 2.01 / 1.92 / 2.04 cm3; {_ECKSTEIN_2001}"
        ),
        L.LATERAL_TIBIAL_CARTILAGE: Range(
            600, 5_500, 150, 11_000, f"mskt maps: 2.56 / 1.85 / 3.09 cm3; {_ECKSTEIN_2001}"
        ),
        L.PATELLAR_CARTILAGE: Range(700, 7_500, 200, 15_000, f"mskt maps: 3.20 / 1.18 / 3.53 cm3; {_ECKSTEIN_2001}"),
        L.MEDIAL_MENISCUS: Range(800, 6_000, 200, 12_000, f"mskt map b: 2.35 cm3; {_BLOECKER_2013}"),
        L.LATERAL_MENISCUS: Range(800, 6_000, 200, 12_000, f"mskt map b: 2.14 cm3; {_BLOECKER_2013}"),
    }
)

#: Mediolateral width (mm) of each bone: its extent along the patient's left-right axis.
WIDTH_MM: Mapping[str, Range] = MappingProxyType(
    {
        L.FEMUR: Range(55, 110, 35, 150, f"mskt maps: 79.6 / 68.3 / 75.9 mm; {_HITT_2003}"),
        L.TIBIA: Range(55, 110, 35, 150, f"mskt maps: 73.7 / 64.9 / 71.9 mm; {_HITT_2003}"),
        L.PATELLA: Range(28, 65, 15, 90, f"mskt maps: 41.6 / 39.0 / 40.3 mm; {_BALDWIN_2005}"),
    }
)

#: Mean cartilage thickness (mm) of each reported plate (area-weighted, along bone normals).
MEAN_THICKNESS_MM: Mapping[str, Range] = MappingProxyType(
    {
        region: Range(
            1.0, 4.0, 0.4, 7.0, f"mskt maps: {maps}; {_ECKSTEIN_2001} (mean plate thicknesses of about 1.5-3 mm)"
        )
        for region, maps in (
            ("femoral", "2.26 / 2.20 / 2.21 mm"),
            ("medial_tibial", "1.81 / 2.25 / 1.97 mm"),
            ("lateral_tibial", "2.17 / 2.56 / 2.65 mm"),
            ("patellar", "2.31 / 1.51 / 2.73 mm"),
        )
    }
)
#: 95th percentile of the thickness (mm): the thickest cartilage (patellar ridge) stays below about 6-7 mm.
P95_THICKNESS_MM = Range(None, 6.5, None, 10.0, f"mskt maps: highest plate p95 3.55 / 4.52 / 4.24 mm; {_ECKSTEIN_2001}")

#: Pieces of a structure at least this fraction of its largest piece count (smaller ones are noise).
PIECE_FRACTION = 0.10
#: Usual number of such pieces: femoral cartilage can be split by a denuded area; the others are one piece.
MAX_PIECES: Mapping[str, int] = MappingProxyType(
    {
        L.FEMORAL_CARTILAGE: 3,
        L.MEDIAL_TIBIAL_CARTILAGE: 2,
        L.LATERAL_TIBIAL_CARTILAGE: 2,
        L.PATELLAR_CARTILAGE: 2,
        L.MEDIAL_MENISCUS: 3,
        L.LATERAL_MENISCUS: 3,
    }
)
PIECES_SOURCE = (
    "mskt maps: every cartilage plate and meniscus is one piece; a torn meniscus (common in osteoarthritic knees) "
    "can be segmented in two or three"
)

#: Share of a cartilage plate's volume in pieces touching its bone (cartilage lies on bone by definition).
ATTACHED_FRACTION = Range(0.85, None, 0.5, None, "mskt maps: 1.00 for every plate (cartilage covers bone)")

#: How far (degrees) the knee's axes lie from the nearest image axis, for a segmentation: the network saw the knee
#: in this pose. Long axis: tibia -> femur centroids; mediolateral axis: lateral -> medial tibial cartilage
#: centroids. The demo model was trained on knees whose axes lie along the image axes within 8 degrees
#: (scripts/train_demo_model.py), the published one on sagittal DESS scans like the mskt maps.
POSE_DEGREES = Range(
    None,
    25.0,
    None,
    None,
    "training poses within 8 degrees of the image axes (scripts/train_demo_model.py); mskt maps: long axis 14.0 / "
    "10.0 / 7.6 and mediolateral axis 8.7 / 13.1 / 7.5 degrees from the nearest image axis",
)

#: Shape-model reconstruction distance (average symmetric surface distance of the femur, mm) when the fit ran.
#: No published distribution was available here: a judgment, about 2.5x the documented example fit (0.61 mm,
#: docs/results-schema.md); a distance several times that means a bone surface the model cannot represent.
SHAPE_ASSD_MM = Range(
    None, 1.5, None, 3.0, "judgment: about 2.5x the documented example fit of 0.61 mm (docs/results-schema.md)"
)
