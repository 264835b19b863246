"""The three model planes of the Goyal 2-D U-Nets, and the exact axis permutation/flip between a Volume and a plane.

Upstream (DOSMA) reformats the volume to a fixed orientation tuple and feeds ``transpose(vol, (2, 0, 1))``, i.e. a
stack of slices along the tuple's third axis whose rows follow the first and columns the second. DOSMA's tuples name
where an index axis goes *from* and *to* ("SI": towards inferior), so the stacks are:

======== ============================ ============ =============== ================
plane    DOSMA orientation            slices step  rows step       columns step
======== ============================ ============ =============== ================
sagittal (SI, AP, LR)                 to the right to inferior     to posterior
coronal  (LR, SI, AP)                 to posterior to the right    to inferior
axial    (LR, AP, SI)                 to inferior  to the right    to posterior
======== ============================ ============ =============== ================

The permutation is found from the Volume's direction cosines (each stack axis takes the index axis closest to its
patient direction), so any stored orientation works, oblique ones included; going back is its exact inverse
(no resampling either way).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

#: LPS unit vector of each patient direction letter.
_DIRECTIONS = {
    "L": (1.0, 0.0, 0.0),
    "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0),
    "A": (0.0, -1.0, 0.0),
    "S": (0.0, 0.0, 1.0),
    "I": (0.0, 0.0, -1.0),
}


@dataclass(frozen=True)
class PlaneLayout:
    """A model plane: where the (slice, row, column) axes of its stack point, and the published input size."""

    name: str
    stack_axes: tuple[str, str, str]
    default_size: tuple[int, int]


PLANES: dict[str, PlaneLayout] = {
    "sagittal": PlaneLayout("sagittal", ("R", "I", "P"), (512, 512)),
    "coronal": PlaneLayout("coronal", ("P", "R", "I"), (160, 512)),
    "axial": PlaneLayout("axial", ("I", "R", "P"), (160, 512)),
}


@dataclass(frozen=True)
class Reformat:
    """Volume array (k, j, i) -> stack (slice, row, column): ``transpose(order)`` then flip ``flips``."""

    order: tuple[int, int, int]
    flips: tuple[int, ...]

    def forward(self, array: np.ndarray) -> np.ndarray:
        out = array.transpose(self.order)
        return np.flip(out, self.flips) if self.flips else out

    def inverse(self, stack: np.ndarray) -> np.ndarray:
        out = np.flip(stack, self.flips) if self.flips else stack
        return out.transpose(np.argsort(self.order))


def reformat_for(direction: np.ndarray, layout: PlaneLayout) -> Reformat:
    """How a Volume with ``direction`` (columns: LPS vectors of index axes i, j, k) becomes ``layout``'s stack."""
    direction = np.asarray(direction, dtype=float).reshape(3, 3)
    # numpy axis a of the array (k, j, i) runs along direction column 2 - a
    axis_vectors = [direction[:, 2 - a] for a in range(3)]
    targets = [np.asarray(_DIRECTIONS[letter]) for letter in layout.stack_axes]
    cosines = np.array([[float(t @ v) for v in axis_vectors] for t in targets])  # [stack axis, numpy axis]
    best = max(itertools.permutations(range(3)), key=lambda p: sum(abs(cosines[s, p[s]]) for s in range(3)))
    flips = tuple(s for s in range(3) if cosines[s, best[s]] < 0)
    return Reformat(tuple(int(a) for a in best), flips)  # type: ignore[arg-type]


def to_plane(array: np.ndarray, direction: np.ndarray, layout: PlaneLayout) -> np.ndarray:
    """The volume as ``layout``'s stack of slices (a view)."""
    return reformat_for(direction, layout).forward(array)


def from_plane(stack: np.ndarray, direction: np.ndarray, layout: PlaneLayout) -> np.ndarray:
    """A stack in ``layout`` back in the Volume's array order (exact inverse of :func:`to_plane`)."""
    return np.ascontiguousarray(reformat_for(direction, layout).inverse(stack))
