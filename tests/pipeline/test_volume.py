"""The grid helpers the stages use in place of whole-grid numpy and scipy calls (bounding_box, grown_box,
mask_indices, value_counts, erode_faces, dilate_cube, Volume.physical_coordinate), checked against the calls they
replace (np.argwhere, np.bincount, scipy's binary erosion and dilation, index_to_physical) on random masks and label
arrays, and grown_box on hand-worked boxes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pipeline.volume import Volume, bounding_box, dilate_cube, erode_faces, grown_box, mask_indices, value_counts


def random_masks():
    rng = np.random.default_rng(7)
    shape = (9, 13, 11)
    yield np.zeros(shape, bool)  # empty
    yield np.ones(shape, bool)  # full: the box is the grid
    one = np.zeros(shape, bool)
    one[0, 12, 10] = True  # one voxel, in a corner
    yield one
    for density in (0.001, 0.02, 0.5):
        yield rng.random(shape) < density
    sparse = np.zeros((40, 30, 20), bool)
    sparse[3:7, 25:30, 0] = rng.random((4, 5)) < 0.7  # on the grid's faces
    yield sparse
    yield (rng.random((11, 7, 5)) < 0.1).transpose(2, 0, 1)  # a non-contiguous view


@pytest.mark.parametrize("mask", list(random_masks()))
def test_bounding_box_and_mask_indices_equal_what_argwhere_gives(mask):
    listed = np.argwhere(mask)
    box = bounding_box(mask)
    if not len(listed):
        assert box is None and mask_indices(mask).shape == (0, 3)
        return
    assert [(s.start, s.stop) for s in box] == list(zip(listed.min(0), listed.max(0) + 1, strict=True))
    assert np.array_equal(mask_indices(mask), listed)  # the same rows, in the same order


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_value_counts_equal_bincount_across_chunk_boundaries(dtype):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 300 if dtype == np.uint16 else 12, size=(5, 7, 9)).astype(dtype)
    for chunk in (1, 7, 64, 10_000):
        assert np.array_equal(value_counts(labels, chunk=chunk), np.bincount(labels.ravel()))
    assert np.array_equal(value_counts(np.zeros((3, 3, 3), np.uint8)), [27])


def test_grown_box_widens_per_axis_and_stays_inside_the_array():
    box = (slice(0, 3), slice(5, 9), slice(2, 10))
    assert grown_box(box, 2, (20, 10, 11)) == (slice(0, 5), slice(3, 10), slice(0, 11))
    assert grown_box(box, [1, 0, 3], (20, 10, 11)) == (slice(0, 4), slice(5, 9), slice(0, 11))
    grid = np.arange(20 * 10 * 11).reshape(20, 10, 11)
    assert grid[grown_box(box, 1, grid.shape)].shape == (4, 6, 10)


@pytest.mark.parametrize("mask", list(random_masks()))
def test_erode_faces_equals_scipys_erosion_by_the_cross_over_the_same_axes(mask):
    blobs = ndimage.binary_dilation(mask)  # solid pieces too, not only scattered voxels
    for tested in (mask, blobs):
        for axes in ((0, 1, 2), (1, 2), (0, 2), (0,)):
            cross = np.zeros((3, 3, 3), bool)
            cross[1, 1, 1] = True
            for axis in axes:
                cross[tuple(slice(None) if a == axis else 1 for a in range(3))] = True
            expected = ndimage.binary_erosion(tested, cross)
            assert np.array_equal(erode_faces(tested, axes), expected), axes
            labelled = tested * (1 + np.indices(tested.shape).sum(axis=0) % 2).astype(np.uint8)  # values 1 and 2
            assert np.array_equal(erode_faces(labelled, axes), expected), axes  # any non-zero value is "set"
            assert expected.sum() < max(tested.sum(), 1) or not tested.any()  # the erosion removed something


@pytest.mark.parametrize("mask", list(random_masks()))
def test_dilate_cube_equals_scipys_26_neighbour_dilation(mask):
    expected = ndimage.binary_dilation(mask, np.ones((3, 3, 3), bool))
    assert np.array_equal(dilate_cube(mask), expected)
    assert np.array_equal(dilate_cube(mask[:1]), ndimage.binary_dilation(mask[:1], np.ones((3, 3, 3), bool)))


def test_physical_coordinate_is_one_column_of_index_to_physical():
    rotation = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0]  # an oblique grid
    grid = Volume(np.zeros((4, 5, 6), np.uint8), spacing=(0.4, 0.5, 2.0), origin=(-10.0, 3.0, 7.5), direction=rotation)
    ijk = np.random.default_rng(6).integers(0, 300, size=(50, 3))
    for axis in range(3):
        assert np.allclose(grid.physical_coordinate(ijk, axis), grid.index_to_physical(ijk)[:, axis], rtol=0, atol=1e-9)
