"""Anatomical plausibility of a label map: the phantom knee (known anatomy) passes every check, and each check
catches the defect made to it on purpose."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from pipeline import labels as L
from pipeline.morphometry.qc import structure_stats
from pipeline.quality.plausibility import bone_width_mm, pieces_and_attachment, plausibility_findings
from pipeline.quality.reference_ranges import VOLUME_MM3, Range
from pipeline.synthetic import make_phantom

SPACING = (0.5, 0.5, 1.0)  # a training spacing of the demo model, quick to measure


@functools.lru_cache(maxsize=1)
def knee():
    return make_phantom(side="right", spacing=SPACING).labels


def findings_of(labels, **kwargs):
    """Findings without the thickness checks (the morphometry they need is tested on the session's analysis)."""
    return plausibility_findings(labels, structure_stats(labels), {}, **kwargs)


def with_structure(labels, name: str, mask: np.ndarray):
    data = labels.array.copy()
    data[mask] = L.CANONICAL[name]
    return labels.with_array(data)


def test_range_levels():
    usual = Range(10, 20, 5, 40, "test")
    assert [usual.level(v) for v in (4, 7, 15, 30, 41)] == ["failed", "review", None, "review", "failed"]
    assert Range(25_000, None, 5_000, None, "test").level(1e9) is None
    assert usual.describe("mm") == "10-20 mm" and Range(None, 6.5, None, 10, "").describe("mm") == "<= 6.5 mm"


def test_phantom_knee_is_plausible_in_every_check(right_result):
    """The built-in example's labels (the session's analysed right phantom): no finding, thickness included."""
    qc = right_result.segmentation_qc
    assert qc.findings == () and qc.verdict == "ok", qc.reasons
    assert findings_of(knee()) == []  # and on the coarser grid used below


def test_bone_width_is_the_phantoms_mediolateral_extent():
    """Condyles: spheres of radius 18 mm centred 20 mm either side: 76 mm across; the tibial plateau is an ellipse
    of semi-axis 40 mm: 80 mm. The 0.5-99.5 percentile extent plus one voxel lies within 5 mm of both."""
    assert bone_width_mm(knee(), L.FEMUR) == pytest.approx(76.0, abs=5.0)
    assert bone_width_mm(knee(), L.TIBIA) == pytest.approx(80.0, abs=5.0)
    assert bone_width_mm(knee(), L.PATELLA) == pytest.approx(40.0, abs=5.0)


def test_missing_structures_fail_and_missing_menisci_ask_for_review():
    data = knee().array.copy()
    data[np.isin(data, [L.CANONICAL[L.PATELLA], L.CANONICAL[L.MEDIAL_MENISCUS]])] = 0
    found = {(f.structure, f.check, f.level) for f in findings_of(knee().with_array(data))}
    assert (L.PATELLA, "missing", "failed") in found and (L.MEDIAL_MENISCUS, "missing", "review") in found


def test_given_map_is_judged_only_on_the_structures_its_scheme_names():
    data = knee().array.copy()
    data[np.isin(data, [L.CANONICAL[m] for m in L.MENISCI])] = 0  # like two of the real mskt maps
    assessed = set(L.STRUCTURES) - set(L.MENISCI)
    assert findings_of(knee().with_array(data), assessed=assessed) == []


def test_floating_cartilage_is_off_its_bone():
    """The field of view widened by 30 mm, and a block of 'femoral cartilage' there, half the plate's volume: a third
    of the plate's volume lies off the bone (review); three times the plate: three quarters off (failed)."""
    from pipeline.volume import Volume

    labels = knee()
    plate = int((labels.array == L.CANONICAL[L.FEMORAL_CARTILAGE]).sum())
    nk, _, ni = labels.array.shape
    for factor, level in ((0.5, "review"), (3.0, "failed")):
        data = np.pad(labels.array, ((0, 0), (0, 0), (0, 60)))  # 60 voxels of 0.5 mm beyond the last column
        rows = int(np.ceil(factor * plate / (nk * 40)))
        data[:, :rows, ni + 10 : ni + 50] = L.CANONICAL[L.FEMORAL_CARTILAGE]
        block = nk * rows * 40
        moved = Volume(data, labels.spacing, labels.origin, labels.direction)
        pieces, attached = pieces_and_attachment(moved, L.FEMORAL_CARTILAGE)
        assert pieces == 2 and attached == pytest.approx(plate / (plate + block))
        found = [(f.level, f.reason) for f in findings_of(moved) if f.check == "attachment"]
        assert found == [(level, "femoral cartilage off its bone")]


def test_cartilage_in_many_pieces_asks_for_review():
    labels = knee()
    data = labels.array.copy()
    tibial = data == L.CANONICAL[L.MEDIAL_TIBIAL_CARTILAGE]
    columns = np.nonzero(tibial.any(axis=(0, 1)))[0]
    for cut in np.linspace(columns.min(), columns.max(), 5)[1:-1].astype(int):  # three cuts: four pieces
        data[:, :, cut - 1 : cut + 2][tibial[:, :, cut - 1 : cut + 2]] = 0
    found = [f for f in findings_of(labels.with_array(data)) if f.check == "pieces"]
    assert [(f.structure, f.level, f.value) for f in found] == [(L.MEDIAL_TIBIAL_CARTILAGE, "review", 4)]


def test_implausible_volume_and_not_a_knee():
    """Patellar cartilage grown far beyond any knee's, and a femur shrunk to a sliver: volume and knee findings."""
    labels = knee()
    data = labels.array.copy()
    femur = np.argwhere(data == L.CANONICAL[L.FEMUR])
    keep = femur[: len(femur) // 40]  # the first slices' worth: far below any femur
    data[data == L.CANONICAL[L.FEMUR]] = 0
    data[tuple(keep.T)] = L.CANONICAL[L.FEMUR]
    found = findings_of(labels.with_array(data))
    femur_volume = next(f for f in found if f.structure == L.FEMUR and f.check == "volume")
    assert femur_volume.level == "failed" and femur_volume.value < VOLUME_MM3[L.FEMUR].possible_low
    assert any(f.check == "knee" and f.level == "failed" and "femur" in f.reason for f in found)


def test_pose_is_the_rotation_of_the_grid_against_the_knee():
    """The phantom on a grid turned 30 degrees about the anterior-posterior axis: both its long and its mediolateral
    axis lie 30 degrees from the nearest image axis (the phantom's own axes are within 2 degrees of the grid's)."""
    from pipeline.quality.plausibility import pose_degrees, pose_findings
    from pipeline.synthetic import ORIENTATIONS, PhantomSpec

    assert pose_degrees(knee()) < 2.0 and pose_findings(knee()) == []
    angle = np.radians(30.0)
    turn = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    spec = PhantomSpec(side="right", spacing=(1.0, 1.0, 1.0), direction=turn @ ORIENTATIONS["sagittal"])
    turned = make_phantom(spec).labels
    assert pose_degrees(turned) == pytest.approx(30.0, abs=2.0)
    (finding,) = pose_findings(turned)
    assert finding.level == "review" and finding.reason == "knee rotated far from the training pose"
