"""The LPS slice layout worked out from the direction cosines (a numpy view, no copy) equals SimpleITK's DICOMOrient
voxel for voxel, with the same spacing and slice positions, for every axis order, flip and a moderate obliquity."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.report import slices
from pipeline.volume import Volume


def _rotation(degrees: tuple[float, float, float]) -> np.ndarray:
    out = np.eye(3)
    for axis, angle in enumerate(np.radians(degrees)):
        c, s = np.cos(angle), np.sin(angle)
        r = np.eye(3)
        i, j = [k for k in range(3) if k != axis]
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        out = r @ out
    return out


def _volumes():
    rng = np.random.default_rng(2)
    data = rng.integers(0, 200, (7, 9, 11)).astype(np.int16)  # (k, j, i): distinct sizes catch swapped axes
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            direction = np.zeros((3, 3))
            for column, row in enumerate(perm):
                direction[row, column] = signs[column]
            yield Volume(data, (0.4, 0.7, 1.3), (10.0, -20.0, 5.5), direction)
    for tilt in ((20, 0, 0), (0, -25, 10), (15, 15, -30)):  # oblique, but each axis nearest one patient axis
        yield Volume(data, (0.4, 0.7, 1.3), (1.0, 2.0, 3.0), _rotation(tilt) @ np.diag([1, -1, 1]))


@pytest.mark.parametrize("volume", list(_volumes()), ids=lambda v: str(np.round(v.direction, 2).tolist()))
def test_the_lps_view_equals_dicomorient(volume):
    assert slices.lps_layout(volume) is not None
    ours, spacing = slices.to_lps_array(volume)
    theirs, theirs_spacing = slices._dicom_orient(volume)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(spacing, theirs_spacing)
    assert np.shares_memory(ours, volume.array)  # a view: no copy of the volume
    mine, reference = slices.slice_locations(volume), slices._oriented_slice_locations(volume)
    for plane in slices.PLANES:
        np.testing.assert_allclose(mine.positions_mm[plane], reference.positions_mm[plane], atol=1e-9)


def test_an_axis_about_45_degrees_oblique_is_left_to_simpleitk():
    volume = Volume(np.zeros((5, 6, 7), np.uint8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), _rotation((45, 0, 0)))
    assert slices.lps_layout(volume) is None
    array, _ = slices.to_lps_array(volume)
    orient = sitk.DICOMOrient(volume.to_sitk(), "LPS")
    assert array.shape == sitk.GetArrayFromImage(orient).shape


@pytest.mark.parametrize("volume", list(_volumes()), ids=lambda v: str(np.round(v.direction, 2).tolist()))
def test_a_box_of_the_volume_is_the_same_voxels_boxed_in_the_lps_array(volume):
    from pipeline.volume import bounding_box

    mask = np.zeros(volume.array.shape, bool)
    mask[1:4, 2:3, 5:11] = True  # touches the last index of one axis, so a flip's end is checked
    mask[2, 7, 6] = True
    box = slices.lps_layout(volume).lps_box(bounding_box(mask), mask.shape)
    moved = slices.to_lps_array(volume.with_array(mask.astype(np.uint8)))[0].astype(bool)
    assert box == bounding_box(moved)
