"""How sure the network was: per-structure confidence from the logits it already computed, before the argmax.

Computed at the network's own resolution (nnU-Net's sliding-window logits, before they are resampled to the image
grid), streamed in slabs so that no second full-size array is made:

* **max-softmax probability**, mean over each structure's voxels (the voxels whose argmax is that structure) and
  over its **boundary band** (its voxels with a 6-neighbour of another label): a trained network is sure inside
  a structure it recognises and unsure along its edges; on an image unlike its training data it is unsure of
  whole structures;
* **soft-to-hard volume ratio**: the structure's summed probability over the whole image divided by its argmax
  voxel count (1 = crisp; far from 1 = the network spread the structure thinly or squeezed it);
* **mirror disagreement**, only where test-time mirroring runs: the fraction of the structure's voxels (tile by
  tile) where at least one mirrored copy's argmax differs from the averaged prediction's. nnU-Net's own mirroring
  code runs unchanged; the predictor records each copy's argmax on the way (``predictor.py``).

Values are keyed by the model's label value; the segmenter turns them into structure names (``for_structures``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Upper bound on one slab of float32 probabilities (elements). At 8 M (32 MB) the slab is ~1 % of the published
#: model's full-knee logits and of the demo model's case memory; large enough that the per-slab overhead is small.
SLAB_ELEMENTS = 8_000_000


@dataclass(frozen=True)
class StructureConfidence:
    """The network's certainty about one structure (network resolution; see the module docstring).

    Attributes:
        voxels: voxels whose argmax is this structure.
        mean_probability: mean max-softmax probability over them (None when there are none).
        boundary_voxels: those of them with a 6-neighbour of another label.
        boundary_probability: mean max-softmax probability over the boundary band (None when empty).
        soft_volume_ratio: summed probability of the structure over all voxels / ``voxels`` (None when empty).
        mirror_disagreement: fraction of its voxels where a mirrored prediction disagreed (None: no mirroring).
    """

    voxels: int
    mean_probability: float | None
    boundary_voxels: int
    boundary_probability: float | None
    soft_volume_ratio: float | None
    mirror_disagreement: float | None = None

    def to_dict(self) -> dict:
        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "voxels": self.voxels,
            "mean_probability": r(self.mean_probability),
            "boundary_voxels": self.boundary_voxels,
            "boundary_probability": r(self.boundary_probability),
            "soft_volume_ratio": r(self.soft_volume_ratio),
            "mirror_disagreement": r(self.mirror_disagreement),
        }


@dataclass(frozen=True)
class NetworkConfidence:
    """Per-structure confidence of one segmentation (the last stage of a cascade).

    Attributes:
        structures: structure name (or model label value as text, before ``for_structures``) -> its confidence.
        spacing_mm: the network's working spacing, in nnU-Net's (array) axis order.
        mirror_axes: the axes test-time mirroring used (empty: none).
        seconds: time spent on these statistics (for the overhead benchmark).
    """

    structures: Mapping[str, StructureConfidence]
    spacing_mm: tuple[float, ...] = ()
    mirror_axes: tuple[int, ...] = ()
    seconds: float = 0.0

    @property
    def mirrored(self) -> bool:
        return bool(self.mirror_axes)

    def for_structures(self, names: Mapping[int, str]) -> NetworkConfidence:
        """Keyed by structure name (model value -> name); values without a name (background, ignored) dropped."""
        renamed = {names[int(k)]: v for k, v in self.structures.items() if int(k) in names}
        return NetworkConfidence(renamed, self.spacing_mm, self.mirror_axes, self.seconds)

    def to_dict(self) -> dict:
        return {
            "resolution": "network",
            "spacing_mm": [round(s, 4) for s in self.spacing_mm],
            "mirror_axes": list(self.mirror_axes),
            "seconds": round(self.seconds, 3),
            "structures": {name: c.to_dict() for name, c in self.structures.items()},
        }


@dataclass
class ConfidenceAccumulator:
    """Collects mirror votes tile by tile, then summarises the final logits (one per segmentation stage)."""

    n_classes: int
    spacing_mm: tuple[float, ...] = ()
    mirror_axes: tuple[int, ...] = ()
    _votes: np.ndarray = field(init=False)
    _disagreements: np.ndarray = field(init=False)
    _seconds: float = 0.0

    def __post_init__(self) -> None:
        self._votes = np.zeros(self.n_classes, dtype=np.int64)
        self._disagreements = np.zeros(self.n_classes, dtype=np.int64)

    def add_mirror_votes(self, averaged: Any, copies: Sequence[Any]) -> None:
        """One tile: ``averaged`` logits (1, C, ...) and each mirrored copy's argmax (1, ...), flipped back."""
        import torch

        t0 = time.perf_counter()
        final = averaged.argmax(1)
        differs = torch.zeros_like(final, dtype=torch.bool)
        for vote in copies:
            differs |= vote != final
        self._votes += torch.bincount(final.ravel(), minlength=self.n_classes).cpu().numpy()[: self.n_classes]
        self._disagreements += (
            torch.bincount(final[differs].ravel(), minlength=self.n_classes).cpu().numpy()[: self.n_classes]
        )
        self._seconds += time.perf_counter() - t0

    def finish(self, logits: Any) -> NetworkConfidence:
        """Summarise the aggregated logits (C, Z, Y, X) of the whole image, slab by slab along Z."""
        t0 = time.perf_counter()
        sums = logit_sums(logits, self.n_classes)
        structures = {}
        mirrored = self._votes.sum() > 0
        for value in range(self.n_classes):
            n, nb = int(sums["voxels"][value]), int(sums["boundary_voxels"][value])
            disagreement = None
            if mirrored and self._votes[value] > 0:
                disagreement = float(self._disagreements[value] / self._votes[value])
            structures[str(value)] = StructureConfidence(
                voxels=n,
                mean_probability=float(sums["probability"][value] / n) if n else None,
                boundary_voxels=nb,
                boundary_probability=float(sums["boundary_probability"][value] / nb) if nb else None,
                soft_volume_ratio=float(sums["soft_volume"][value] / n) if n else None,
                mirror_disagreement=disagreement,
            )
        seconds = self._seconds + time.perf_counter() - t0
        return NetworkConfidence(structures, self.spacing_mm, self.mirror_axes if mirrored else (), seconds)


def logit_sums(logits: Any, n_classes: int, *, slab_elements: int = SLAB_ELEMENTS) -> dict[str, np.ndarray]:
    """Per class: argmax voxels, summed max-probability, boundary voxels and their summed max-probability, and
    summed probability (soft volume). ``logits`` (C, Z, Y, X), any float dtype, torch tensor or array.

    Slabs along Z carry a one-voxel halo so the boundary test sees its neighbours across slab edges; the image's
    own faces count as "same label" (a structure cut by the field of view has no boundary there).
    """
    import torch

    logits = torch.as_tensor(logits)
    depth = int(logits.shape[1])
    per_slice = max(1, int(np.prod(logits.shape)) // max(depth, 1))
    step = max(1, min(depth, slab_elements // per_slice))
    totals = {key: torch.zeros(n_classes, dtype=torch.float64) for key in _KEYS}
    with torch.inference_mode():
        for z0 in range(0, depth, step):
            z1 = min(depth, z0 + step)
            lo, hi = max(0, z0 - 1), min(depth, z1 + 1)
            _add_slab(logits[:, lo:hi], z0 - lo, z1 - lo, n_classes, totals)
    return {key: value.numpy() for key, value in totals.items()}


_KEYS = ("voxels", "probability", "boundary_voxels", "boundary_probability", "soft_volume")


def _add_slab(slab: Any, core_lo: int, core_hi: int, n_classes: int, totals: dict) -> None:
    import torch

    x = slab.to(device="cpu", dtype=torch.float32)
    top, label = x.max(0)
    x = torch.exp_(x.sub_(top))  # in place: exp(l - max), one float32 slab in memory
    total = x.sum(0)
    labels_all = label
    core = slice(core_lo, core_hi)
    label = label[core]
    max_probability = total[core].reciprocal()
    boundary = _boundary(labels_all)[core]
    flat = label.ravel()
    totals["voxels"] += torch.bincount(flat, minlength=n_classes)[:n_classes].double()
    totals["probability"] += torch.bincount(flat, weights=max_probability.ravel(), minlength=n_classes)[
        :n_classes
    ].double()
    edge = flat[boundary.ravel()]
    totals["boundary_voxels"] += torch.bincount(edge, minlength=n_classes)[:n_classes].double()
    totals["boundary_probability"] += torch.bincount(
        edge, weights=max_probability.ravel()[boundary.ravel()], minlength=n_classes
    )[:n_classes].double()
    totals["soft_volume"] += (x[:, core] * max_probability).sum(dim=(1, 2, 3)).double()[:n_classes]


def _boundary(label: Any) -> Any:
    """Voxels with a 6-neighbour of another label (faces of the array: no neighbour, no boundary)."""
    import torch

    edge = torch.zeros_like(label, dtype=torch.bool)
    for axis in range(label.ndim):
        n = label.shape[axis]
        if n < 2:
            continue
        a, b = label.narrow(axis, 0, n - 1), label.narrow(axis, 1, n - 1)
        differs = a != b
        edge.narrow(axis, 0, n - 1).logical_or_(differs)
        edge.narrow(axis, 1, n - 1).logical_or_(differs)
    return edge
