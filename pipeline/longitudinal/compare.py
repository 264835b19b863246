"""``compare(baseline, followup) -> KneeChange``: cartilage change between two visits of the same knee.

Order: read (or analyse, through the engine) both visits; refuse a left and a right knee; register each follow-up
bone onto its baseline bone (bone only; both ways, so that swapping the visits gives the inverse transform) and
refuse bones whose shapes clearly disagree (two different knees); flag registrations worth a look; measure the
follow-up's cartilage along the baseline's rays (``transfer``); summarise per baseline region.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .. import labels as L
from ..errors import InvalidInputError
from ..morphometry.mesh import Surface
from ..progress import ProgressFn, StageTimer, no_progress, scaled
from ..report.provenance import build_provenance
from ..request import AnalysisRequest
from .change import KneeChange, RegionChange, VolumeChange
from .registration import BoneRegistration, RegistrationOptions, register_bone, register_both_ways
from .transfer import RAY_SMOOTHING_MM, TransferredThickness, transfer_thickness
from .visits import Visit, VisitInput, load_visit

if TYPE_CHECKING:
    from ..engine import Engine

#: Bone shapes of one knee scanned twice agree to a fraction of a voxel; beyond this many mm (or 1.5 voxels, if
#: larger) after the best rigid fit they are two knees.
MIN_RESIDUAL_LIMIT_MM = 1.0
RESIDUAL_LIMIT_VOXELS = 1.5
#: Below this share of matching follow-up surface the bones are too different (or overlap too little) to compare.
MIN_OVERLAP = 0.4
#: A registration accepted but worth a look (a QC warning): residual above half the refusal limit, less than this
#: share of matching surface, or one-way fits that disagree by more than this (synthetic pairs: 0.00-0.18 mm RMS
#: residual, over 0.8 overlap, 0.00-0.07 mm between the two one-way fits).
REVIEW_RESIDUAL_SHARE = 0.5
REVIEW_OVERLAP = 0.6
REVIEW_INCONSISTENCY_MM = 0.25


class DifferentKneesError(InvalidInputError):
    """The two visits are not the same knee (other side, or bone shapes that disagree)."""


@dataclass(frozen=True)
class CompareOptions:
    """Options of a comparison (mm).

    Attributes:
        threshold_mm: a vertex thinned (thickened) when its change is below -threshold (above +threshold).
        colour_range_mm: symmetric range of the change map's colours (None: from the changes found).
        max_residual_mm: refuse bones further apart than this after registration (None: 1 mm or 1.5 voxels).
        ray_smoothing_mm: width over which the directions of the rays both visits are measured along are averaged.
        ray_jitter_mm: how far each ray starts off its vertex (None: the baseline's mean voxel size).
        registration: the ICP's options.
    """

    threshold_mm: float = 0.2
    colour_range_mm: float | None = None
    max_residual_mm: float | None = None
    ray_smoothing_mm: float = RAY_SMOOTHING_MM
    ray_jitter_mm: float | None = None
    registration: RegistrationOptions = field(default_factory=RegistrationOptions)

    def __post_init__(self) -> None:
        if self.threshold_mm < 0:
            raise InvalidInputError(f"The change threshold must be 0 mm or more, got {self.threshold_mm}.")

    def to_dict(self) -> dict:
        return asdict(self)


def compare(
    baseline: VisitInput,
    followup: VisitInput,
    *,
    engine: Engine | Callable[[bool], Engine] | None = None,
    request: AnalysisRequest | None = None,
    options: CompareOptions | None = None,
    progress: ProgressFn | None = None,
) -> KneeChange:
    """Cartilage thickness change from ``baseline`` to ``followup`` (follow-up minus baseline, on baseline vertices).

    Args:
        baseline, followup: each a KneeAnalysis, an analysis output folder or its results zip, a label map or an MRI
            (file, DICOM folder or zip; segmented first), or a label-map Volume.
        engine: the engine that analyses label maps and MRIs, or engine(segment) -> Engine, made on first need
            (default: ``Engine()`` for label maps, the best model available here without downloading for MRIs).
        request: how a visit given as a label map or an MRI is analysed here (its label scheme and config; no T2),
            as a request without inputs. Default: AnalysisRequest().
        options: threshold, colour range, registration (CompareOptions()).
        progress: callback(fraction 0-1, message).
    Raises:
        DifferentKneesError: a left and a right knee, or bone shapes that clearly disagree.
        InvalidInputError: an input that cannot be read, or no bone in common.
    """
    options = options or CompareOptions()
    report = progress or no_progress
    timer = StageTimer(report)
    engines = _Engines(engine)
    visits = []
    for role, item, start in (("baseline", baseline, 0.0), ("follow-up", followup, 0.35)):
        with timer.stage(role, start, f"Reading the {role}"):
            read = scaled(report, start, start + 0.35, f"{role.capitalize()}: ")
            visits.append(load_visit(item, engine=engines.get, request=request, progress=read))
    base, fu = visits
    warnings = [f"{role}: {w}" for role, v in (("Baseline", base), ("Follow-up", fu)) for w in v.warnings]
    warnings += check_same_side(base, fu)
    bones = [bone for bone in L.BONES if bone in base.bones and bone in fu.bones]
    if not bones:
        raise InvalidInputError("The two visits have no bone in common (femur, tibia or patella): nothing to compare.")
    warnings += [f"The {b} is missing in one visit: its cartilage is not compared." for b in L.BONES if b not in bones]
    with timer.stage("registration", 0.7, "Registering the bones"):
        registrations: dict[str, BoneRegistration] = {}
        for bone in bones:  # refused at the first bone that disagrees
            registrations[bone] = _register(base, fu, bone, options)
            check_same_knee(registrations[bone], residual_limit(base, fu, options))
        warnings += registration_warnings(registrations.values(), residual_limit(base, fu, options))
    with timer.stage("transfer", 0.85, "Measuring the follow-up along the baseline's normals"):
        transferred = {bone: _transfer(base, fu, bone, registrations[bone], options) for bone in bones}
    if base.config != fu.config:
        warnings.append("The two analyses used different parameters: both visits were measured with the baseline's.")
    report(1.0, "Comparison complete")
    return KneeChange(
        baseline=base,
        followup=fu,
        registrations=registrations,
        regions=region_changes(transferred, options.threshold_mm),
        volumes={c: VolumeChange(base.cartilage_volumes_mm3[c], fu.cartilage_volumes_mm3[c]) for c in L.CARTILAGES},
        surfaces={bone: _change_surface(base, bone, t) for bone, t in transferred.items()},
        threshold_mm=options.threshold_mm,
        colour_range_mm=options.colour_range_mm or colour_range(transferred.values(), options.threshold_mm),
        warnings=tuple(warnings),
        provenance=build_provenance(
            parameters={"compare": options.to_dict(), "thickness": base.config.to_dict()},
            inputs={"baseline": base.to_dict(), "followup": fu.to_dict()},
            timings_s=timer.timings,
        ),
    )


class _Engines:
    """The engine to analyse with: the caller's, else one made on first need (with a model only for MRIs)."""

    def __init__(self, engine: Engine | Callable[[bool], Engine] | None):
        self._given = engine
        self._made: dict[bool, Engine] = {}

    def get(self, segment: bool) -> Engine:
        from ..engine import Engine
        from ..engine_spec import AUTO_MODEL, EngineSpec

        if isinstance(self._given, Engine):
            return self._given
        if segment not in self._made:
            if self._given is not None:
                self._made[segment] = self._given(segment)
            else:  # the best model available here without downloading, built by the one factory
                self._made[segment] = Engine.from_spec(EngineSpec(AUTO_MODEL, download=False), segment=segment)
        return self._made[segment]


def check_same_side(base: Visit, fu: Visit) -> list[str]:
    """Refuse a left and a right knee; a warning when a side is unknown."""
    sides = (base.laterality.side, fu.laterality.side)
    if "unknown" in sides:
        return ["The side of one knee is unknown: the comparison relies on the bone shapes alone to match them."]
    if sides[0] != sides[1]:
        raise DifferentKneesError(
            f"The baseline ({base.case_id}) is a {sides[0]} knee and the follow-up ({fu.case_id}) a {sides[1]} knee: "
            "a comparison needs two visits of the same knee."
        )
    return []


def residual_limit(base: Visit, fu: Visit, options: CompareOptions) -> float:
    if options.max_residual_mm is not None:
        return options.max_residual_mm
    voxel = max(max(base.labels.spacing), max(fu.labels.spacing))
    return max(MIN_RESIDUAL_LIMIT_MM, RESIDUAL_LIMIT_VOXELS * voxel)


def check_same_knee(reg: BoneRegistration, limit_mm: float) -> None:
    """Refuse a bone whose shapes disagree after the best rigid fit (two different knees)."""
    if reg.residual_rms_mm > limit_mm:
        raise DifferentKneesError(
            f"The {reg.bone} shapes of the two visits disagree: after the best rigid fit they lie "
            f"{reg.residual_rms_mm:.2f} mm apart (RMS), where one knee scanned twice agrees within {limit_mm:.2f} "
            "mm. These look like two different knees; compare two visits of the same knee."
        )
    if reg.overlap_fraction < MIN_OVERLAP:
        raise DifferentKneesError(
            f"Only {reg.overlap_fraction:.0%} of the follow-up {reg.bone} surface matches the baseline's after the "
            "best rigid fit: two different knees, or scans that hardly overlap. Compare two visits of the same "
            "knee with the joint in both fields of view."
        )


def registration_warnings(registrations, limit_mm: float) -> list[str]:
    """QC warnings for registrations that were accepted but fit less well than one knee scanned twice should."""
    warnings = []
    for reg in registrations:
        doubts = []
        if reg.residual_rms_mm > REVIEW_RESIDUAL_SHARE * limit_mm:
            doubts.append(f"the bone shapes agree only within {reg.residual_rms_mm:.2f} mm RMS")
        if reg.overlap_fraction < REVIEW_OVERLAP:
            doubts.append(f"only {reg.overlap_fraction:.0%} of the surface matches")
        if reg.inverse_consistency_mm is not None and reg.inverse_consistency_mm > REVIEW_INCONSISTENCY_MM:
            doubts.append(f"the two one-way fits differ by {reg.inverse_consistency_mm:.2f} mm")
        if doubts:
            warnings.append(
                f"Registration of the {reg.bone} is uncertain ({'; '.join(doubts)}): check its change map before "
                "trusting its regions' numbers."
            )
    return warnings


def _register(base: Visit, fu: Visit, bone: str, options: CompareOptions) -> BoneRegistration:
    register = register_both_ways if options.registration.both_ways else register_bone
    return register(
        fu.bones[bone],
        base.bones[bone],
        followup_grid=fu.labels,
        baseline_grid=base.labels,
        options=options.registration,
    )


def _transfer(
    base: Visit, fu: Visit, bone: str, registration: BoneRegistration, options: CompareOptions
) -> TransferredThickness:
    values = tuple(L.CANONICAL[c] for c in L.BONE_CARTILAGE[bone])
    return transfer_thickness(
        base.bones[bone],
        base.labels,
        base.regions,
        fu.labels,
        values,
        registration.transform.inverse(),
        base.config,
        ray_smoothing_mm=options.ray_smoothing_mm,
        jitter_mm=float(np.mean(base.labels.spacing)) if options.ray_jitter_mm is None else options.ray_jitter_mm,
    )


def region_changes(transferred: dict[str, TransferredThickness], threshold_mm: float) -> dict[str, RegionChange]:
    out = {}
    for region, ids in L.CARTILAGE_REGIONS.items():
        bone = L.REGION_BONE[region]
        t = transferred.get(bone)
        out[region] = RegionChange(bone, None) if t is None else RegionChange.measure(bone, ids, t, threshold_mm)
    return out


def colour_range(transferred, threshold_mm: float) -> float:
    """A symmetric colour range: the 95th percentile of |change| rounded up to 0.25 mm, at least twice the threshold."""
    changes = np.concatenate([np.abs(t.change_mm[np.isfinite(t.change_mm)]) for t in transferred] or [np.zeros(0)])
    top = float(np.percentile(changes, 95)) if changes.size else 0.0
    return float(max(2 * threshold_mm, np.ceil(top / 0.25) * 0.25, 0.25))


def _change_surface(base: Visit, bone: str, t: TransferredThickness) -> Surface:
    """The baseline bone with the comparison's arrays only (its region: where the comparison measured)."""
    surface = base.bones[bone]
    arrays = {
        "thickness_change_mm": t.change_mm,
        "baseline_mm": t.baseline_mm,
        "followup_mm": t.followup_mm,
        "region": t.region,
    }
    return Surface(bone, surface.points, surface.faces, arrays)
