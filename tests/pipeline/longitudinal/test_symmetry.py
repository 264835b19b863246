"""Swapping the visits negates the change: compare(B, A) = -compare(A, B).

The bones are registered both ways and the midpoint taken, so the transform of compare(B, A) is exactly the
inverse of compare(A, B)'s; the regional means then agree within 0.02 mm (each is measured on its own baseline's
vertices, whose voxel sampling differs: bench/RESULTS.md "Longitudinal cohorts").
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import labels as L
from pipeline.engine import analyze_labels
from pipeline.longitudinal import compare
from pipeline.longitudinal.registration import RigidTransform, midpoint
from pipeline.synthetic import PhantomSpec
from pipeline.synthetic.followup import make_followup
from tests.fixtures.knees import analysed

SPACING = (0.6, 0.6, 1.2)


def test_swapped_visits_give_the_negative_change_and_the_inverse_registration():
    spec = PhantomSpec(side="right", spacing=SPACING)
    moved = make_followup(
        spec,
        changes={"medial_tibial": -0.4, "femoral": -0.2},
        rotation_deg=(5.0, -4.0, 3.0),
        translation_mm=(4.0, -3.0, 5.0),
        resample=True,
    )
    a, b = analysed(side="right", spacing=SPACING), analyze_labels(moved.phantom.labels)
    forward, backward = compare(a, b), compare(b, a)
    for region in L.CARTILAGE_REGIONS:
        assert abs(forward.change(region) + backward.change(region)) <= 0.02, region
        assert abs(forward.change(region) - moved.changes_mm[region]) <= 0.05, region
    for bone, reg in forward.registrations.items():
        there_and_back = reg.transform.then(backward.registrations[bone].transform)
        np.testing.assert_allclose(there_and_back.matrix, np.eye(4), atol=1e-9)
        other = backward.registrations[bone]
        assert (reg.residual_rms_mm, reg.overlap_fraction) == pytest.approx(
            (other.residual_rms_mm, other.overlap_fraction), rel=1e-9
        )  # refusals do not depend on the order either
        assert reg.inverse_consistency_mm == pytest.approx(other.inverse_consistency_mm, rel=1e-9)


def test_midpoint_of_rigid_transforms():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(3)

    def random_transform() -> RigidTransform:
        return RigidTransform(Rotation.from_rotvec(rng.normal(0, 0.3, 3)).as_matrix(), rng.normal(0, 10, 3))

    a, b = random_transform(), random_transform()
    m = midpoint(a, b)
    half = b.then(a.inverse()).half()
    np.testing.assert_allclose(half.then(half).matrix, b.then(a.inverse()).matrix, atol=1e-12)
    np.testing.assert_allclose(midpoint(a, a).matrix, a.matrix, atol=1e-12)
    np.testing.assert_allclose(midpoint(b.inverse(), a.inverse()).matrix, m.inverse().matrix, atol=1e-12)
    # halfway: the rotation angle from a to m equals that from m to b
    assert a.inverse().then(m).angle_deg == pytest.approx(m.inverse().then(b).angle_deg, rel=1e-9)
