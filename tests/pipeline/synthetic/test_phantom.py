"""The phantom's labelling evaluates each group of structures only inside a box that holds it: the boxes must never
cut a structure, so the labels equal those of every group evaluated on every point."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import labels as L
from pipeline.synthetic.phantom import PhantomSpec, _label_knee_frame, make_phantom

SPECS = [
    PhantomSpec(),
    PhantomSpec(femoral_mm=3.5, tibial_mm=3.4, patellar_mm=3.6),
    PhantomSpec(femoral_mm=6.0, tibial_mm=8.0, patellar_mm=12.0),  # thicker than any meniscus is tall
    PhantomSpec(femoral_mm=1.0, medial_tibial_mm=0.8, lateral_tibial_mm=2.9, patellar_mm=0.5),
]


@pytest.mark.parametrize("spec", SPECS, ids=["default", "thick", "thicker_than_menisci", "thin_and_uneven"])
def test_boxed_labels_equal_labels_evaluated_everywhere(spec):
    # Knee-frame points well beyond every structure (and the grid's field of view), half of them within 3 mm of the
    # joint, where the boxes' edges lie closest to cartilage.
    rng = np.random.default_rng(0)
    everywhere = rng.uniform((-60, -50, -45), (60, 50, 100), size=(200_000, 3))
    joint = rng.uniform((-45, -30, -15), (45, 30, 25), size=(200_000, 3))
    q = np.concatenate([everywhere, joint])
    boxed, reference = _label_knee_frame(q, spec), _label_knee_frame(q, spec, boxed=False)
    assert np.array_equal(boxed, reference), np.flatnonzero(boxed != reference)[:10]
    assert set(np.unique(reference)) == {0, *(L.CANONICAL[name] for name in L.STRUCTURES)}  # every structure met


def test_the_grid_phantom_keeps_its_voxel_counts():
    """Voxels per structure of the default right knee, as generated before the boxes (a fixed reference)."""
    counts = np.bincount(make_phantom(spacing=(0.6, 0.6, 1.2)).labels.array.ravel(), minlength=10)
    assert counts.tolist() == [856902, 150376, 117416, 16493, 22545, 2417, 2417, 2836, 4924, 4924]
