"""The words that orient the 3-D scene (pipeline/report/orientation_marks.py): MEDIAL on the knee's medial side as
its own anatomy shows it (the medial tibial cartilage), LATERAL opposite, ANTERIOR in front; closed boxes."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import labels as L
from pipeline.report.orientation_marks import orientation_marks, text_dots
from tests.fixtures.knees import analysed


@pytest.mark.parametrize("side", ["right", "left"])
def test_medial_and_lateral_words_lie_on_their_compartments(side):
    result = analysed(side=side)
    marks = {m.name: m for m in orientation_marks(result.surfaces, result.laterality.side)}
    assert set(marks) == {"mark_medial", "mark_lateral", "mark_anterior"}
    medial_cartilage = result.labels.voxel_points(result.labels.array == L.CANONICAL[L.MEDIAL_TIBIAL_CARTILAGE])
    lateral_cartilage = result.labels.voxel_points(result.labels.array == L.CANONICAL[L.LATERAL_TIBIAL_CARTILAGE])
    medial_x = np.sign(medial_cartilage[:, 0].mean() - lateral_cartilage[:, 0].mean())
    assert np.sign(marks["mark_medial"].points[:, 0].mean() - marks["mark_lateral"].points[:, 0].mean()) == medial_x
    bones = np.concatenate([result.surfaces[b].points for b in L.BONES])
    assert marks["mark_anterior"].points[:, 1].max() < bones[:, 1].min()  # in front (anterior is -y in LPS)


def test_no_words_when_the_side_is_unknown():
    result = analysed(side="right")
    assert orientation_marks(result.surfaces, "unknown") == []


def test_each_dot_is_a_closed_box_with_outward_faces():
    result = analysed(side="right")
    word = next(m for m in orientation_marks(result.surfaces, "right") if m.name == "mark_medial")
    assert len(word.points) == 8 * len(text_dots("MEDIAL"))
    corners = word.points[word.faces]
    signed_volume = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6
    assert signed_volume > 0  # outward winding: the divergence theorem gives a positive volume
