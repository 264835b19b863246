"""Reformatting to the Goyal model planes: every stack axis points where upstream's does, for any stored orientation.

Known answer from the geometry itself: the LPS position of each stacked voxel (``Volume.index_to_physical``) must
step to the patient direction the plane names (sagittal: slices to the right, rows inferior, columns posterior)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.segmentation.goyal.planes import PLANES, from_plane, reformat_for, to_plane
from pipeline.synthetic import ORIENTATIONS
from pipeline.synthetic.mese import oblique_direction
from pipeline.volume import Volume

LPS = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "S": (0, 0, 1), "I": (0, 0, -1)}
DIRECTIONS = {
    **ORIENTATIONS,
    "flipped_sagittal": ORIENTATIONS["sagittal"] @ np.diag([-1.0, 1.0, -1.0]),
    "oblique": oblique_direction(12.0),
}


def _positions(direction: np.ndarray, shape=(5, 6, 7)) -> tuple[Volume, np.ndarray]:
    """A volume and the LPS position of every voxel, as an array (k, j, i, 3)."""
    volume = Volume(np.zeros(shape, np.float32), (0.5, 0.6, 0.7), (10.0, -5.0, 3.0), direction)
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1)
    return volume, volume.index_to_physical(ijk).reshape(*shape, 3)


@pytest.mark.parametrize("stored", sorted(DIRECTIONS))
@pytest.mark.parametrize("plane", sorted(PLANES))
def test_stack_axes_point_where_the_plane_says(stored, plane):
    volume, xyz = _positions(DIRECTIONS[stored])
    layout = PLANES[plane]
    stacked = np.stack([to_plane(xyz[..., c], volume.direction, layout) for c in range(3)], axis=-1)
    for axis, letter in enumerate(layout.stack_axes):
        step = np.diff(stacked, axis=axis).reshape(-1, 3).mean(axis=0)
        cosine = float(step @ np.array(LPS[letter])) / float(np.linalg.norm(step))
        assert cosine > 0.95, f"{plane} axis {axis} should step {letter}, steps {step}"


@pytest.mark.parametrize("stored", sorted(DIRECTIONS))
@pytest.mark.parametrize("plane", sorted(PLANES))
def test_back_from_the_plane_is_exact(stored, plane):
    array = np.random.default_rng(0).integers(0, 10, (5, 6, 7)).astype(np.uint8)
    layout = PLANES[plane]
    stack = to_plane(array, DIRECTIONS[stored], layout)
    assert np.array_equal(from_plane(stack, DIRECTIONS[stored], layout), array)


def test_sagittal_dess_as_scanners_store_it_needs_only_a_transpose():
    # i -> posterior, j -> inferior, k -> right ("PIR"): the sagittal stack (R, I, P) is (k, j, i) as stored
    reformat = reformat_for(ORIENTATIONS["sagittal"], PLANES["sagittal"])
    assert reformat.order == (0, 1, 2) and reformat.flips == ()
