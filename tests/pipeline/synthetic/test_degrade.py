"""Degraded synthetic knees: each kind does what it says to the image, and the truth is the phantom on the image's
own grid (checked against the phantom voxelised independently on that grid)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline import labels as L
from pipeline.synthetic import make_phantom
from pipeline.synthetic.degrade import KINDS, base_spec, degraded_knee

COARSE = (1.0, 1.0, 1.0)


def spec(seed: int = 1):
    return dataclasses.replace(base_spec(seed), spacing=COARSE, orientation="sagittal")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown degradation"):
        degraded_knee("sunburn", 1.0)
    assert len(KINDS) >= 8


def test_clean_truth_is_the_phantom_and_inversion_inverts():
    clean = degraded_knee("clean", seed=2, spec=spec(2))
    assert np.array_equal(clean.truth.array, make_phantom(spec(2)).labels.array)
    inverted = degraded_knee("inversion", 1.0, seed=2, spec=spec(2))
    # same knee, same render: the inverted image is the clean one's maximum minus the clean image
    assert np.allclose(inverted.image.array, clean.image.array.max() - clean.image.array, atol=1e-3)


def test_thick_slices_average_the_fine_slices_onto_a_coarser_grid():
    case = degraded_knee("anisotropic", 3.0, seed=3, spec=spec(3))
    assert case.image.spacing == pytest.approx((1.0, 1.0, 3.0))
    assert case.truth.array.shape == case.image.array.shape
    assert np.array_equal(case.truth.array, make_phantom(spec(3), grid=case.truth).labels.array)


def test_partial_field_of_view_cuts_image_and_truth_alike():
    full = degraded_knee("clean", seed=4, spec=spec(4))
    cut = degraded_knee("partial_fov", 0.4, seed=4, spec=spec(4))
    axis = 2 - int(np.argmax(np.abs(cut.image.direction[2, :])))  # the superior-inferior array axis
    assert cut.image.array.shape[axis] == round(full.image.array.shape[axis] * 0.6)
    assert cut.truth.array.shape == cut.image.array.shape
    assert np.array_equal(cut.truth.array, make_phantom(spec(4), grid=cut.truth).labels.array)
    assert (cut.truth.array > 0).sum() < (full.truth.array > 0).sum()


def test_rotation_turns_the_grid_by_the_angle():
    case = degraded_knee("rotation", 40.0, seed=5, spec=spec(5))
    turn = case.image.direction @ np.linalg.inv(make_phantom(spec(5)).labels.direction)
    assert np.allclose(turn @ turn.T, np.eye(3), atol=1e-9)
    assert np.degrees(np.arccos((np.trace(turn) - 1) / 2)) == pytest.approx(40.0, abs=1e-6)
    assert L.CANONICAL[L.FEMORAL_CARTILAGE] in case.truth.array


@pytest.mark.parametrize("which", [0, 1, 2, 3])
def test_non_knee_images_have_no_truth(which):
    case = degraded_knee("non_knee", which, seed=6, spec=spec(6))
    assert case.truth is None and float(case.image.array.std()) > 0
