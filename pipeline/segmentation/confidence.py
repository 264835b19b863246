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

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Above this many voxels at the network's resolution the in-plane axes are sampled (``sampling_stride``): the
#: published model's 160 x 384 x 384 knee is read every 2nd voxel in-plane (5.9 M voxels), the demo model's whole.
MAX_VOXELS = 6_000_000
#: Upper bound on one slab of float32 probabilities (elements): 4 M (16 MB, a few such temporaries at once) is a few
#: per cent of a segmentation's peak memory for either model, and large enough that the per-slab overhead is small.
SLAB_ELEMENTS = 4_000_000


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
        stride: in-plane sampling step of the statistics (1: every voxel; ``sampling_stride``).
    """

    structures: Mapping[str, StructureConfidence]
    spacing_mm: tuple[float, ...] = ()
    mirror_axes: tuple[int, ...] = ()
    seconds: float = 0.0
    stride: int = 1

    @property
    def mirrored(self) -> bool:
        return bool(self.mirror_axes)

    def for_structures(self, names: Mapping[int, str]) -> NetworkConfidence:
        """Keyed by structure name (model value -> name); values without a name (background, ignored) dropped."""
        renamed = {names[int(k)]: v for k, v in self.structures.items() if int(k) in names}
        return NetworkConfidence(renamed, self.spacing_mm, self.mirror_axes, self.seconds, self.stride)

    def describe(self) -> dict:
        """How it was measured, for provenance (the per-structure figures go to results.json's qc section)."""
        return {
            "computed_from": "the network's logits at its working resolution, before resampling and argmax",
            "spacing_mm": [round(s, 4) for s in self.spacing_mm],
            "in_plane_sampling_stride": self.stride,
            "mirror_axes": list(self.mirror_axes),
            "seconds": round(self.seconds, 3),
        }

    def to_dict(self) -> dict:
        return {**self.describe(), "structures": {name: c.to_dict() for name, c in self.structures.items()}}


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

    def add_mirror_votes(self, averaged: Any, copies: Sequence[Any], *, seconds_spent: float = 0.0) -> None:
        """One tile: ``averaged`` logits (1, C, ...) and each mirrored copy's argmax (1, ...), flipped back;
        ``seconds_spent`` making those copies is added to the confidence's time."""
        t0 = time.perf_counter()
        with one_thread():
            self._count_votes(averaged, copies)
        self._seconds += time.perf_counter() - t0 + seconds_spent

    def _count_votes(self, averaged: Any, copies: Sequence[Any]) -> None:
        import torch

        final = channel_argmax(averaged, dim=1)
        differs = torch.zeros_like(final, dtype=torch.bool)
        for vote in copies:
            differs |= vote != final
        final = final.ravel().long()
        self._votes += torch.bincount(final, minlength=self.n_classes).cpu().numpy()[: self.n_classes]
        self._disagreements += (
            torch.bincount(final[differs.ravel()], minlength=self.n_classes).cpu().numpy()[: self.n_classes]
        )

    def finish(self, logits: Any) -> NetworkConfidence:
        """Summarise the aggregated logits (C, Z, Y, X) of the whole image, slab by slab along Z."""
        t0 = time.perf_counter()
        with one_thread():
            sums = logit_sums(logits, self.n_classes)
        stride = sampling_stride(tuple(logits.shape[1:]))
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
        return NetworkConfidence(structures, self.spacing_mm, self.mirror_axes if mirrored else (), seconds, stride)


def logit_sums(
    logits: Any, n_classes: int, *, slab_elements: int = SLAB_ELEMENTS, max_voxels: int = MAX_VOXELS
) -> dict[str, np.ndarray]:
    """Per class: argmax voxels, summed max-probability, boundary voxels and their summed max-probability, and
    summed probability (soft volume). ``logits`` (C, Z, Y, X), any float dtype, torch tensor or array.

    Slabs along Z carry a one-voxel halo so the boundary test sees its neighbours across slab edges; the image's
    own faces count as "same label" (a structure cut by the field of view has no boundary there). Above
    ``max_voxels`` the in-plane axes are sampled every ``stride``-th voxel (``sampling_stride``): every statistic
    is a mean or a ratio of sums, which a regular sample estimates without bias.
    """
    import torch

    logits = torch.as_tensor(logits)
    depth = int(logits.shape[1])
    stride = sampling_stride(tuple(logits.shape[1:]), max_voxels)
    sampled = logits[:, :, ::stride, ::stride] if stride > 1 else logits
    per_slice = int(np.prod(sampled.shape)) // max(depth, 1)
    step = max(1, min(depth, slab_elements // max(per_slice, 1)))
    totals = {key: torch.zeros(n_classes, dtype=torch.float64) for key in _KEYS}
    with torch.inference_mode():
        for z0 in range(0, depth, step):
            z1 = min(depth, z0 + step)
            lo, hi = max(0, z0 - 1), min(depth, z1 + 1)
            _add_slab(sampled[:, lo:hi], z0 - lo, z1 - lo, n_classes, totals)
    return {key: value.numpy() for key, value in totals.items()}


def sampling_stride(shape: tuple[int, ...], max_voxels: int = MAX_VOXELS) -> int:
    """In-plane step that brings a (Z, Y, X) grid to at most ``max_voxels`` examined voxels (1: every voxel)."""
    voxels = int(np.prod(shape))
    return max(1, int(np.ceil(np.sqrt(voxels / max_voxels)))) if voxels > max_voxels else 1


_KEYS = ("voxels", "probability", "boundary_voxels", "boundary_probability", "soft_volume")


def _add_slab(slab: Any, core_lo: int, core_hi: int, n_classes: int, totals: dict) -> None:
    """Add one slab's sums to ``totals``. Written for speed on a CPU: float32 throughout, the argmax found from the
    maximum (torch's own argmax over the channel axis is several times slower), labels as uint8 for the
    neighbour test, sums by scatter and dot products rather than full-size temporaries."""
    import torch

    x = slab.to(device="cpu", dtype=torch.float32).contiguous()
    top = x.amax(0)
    label = channel_argmax(x, top)
    boundary = _boundary(label)[core_lo:core_hi].reshape(-1)
    x.sub_(top).exp_()  # in place: exp(l - max) in the one float32 slab
    x = x[:, core_lo:core_hi]
    max_probability = x.sum(0).reciprocal_().reshape(-1)
    label = label[core_lo:core_hi].reshape(-1).long()
    n = min(n_classes, x.shape[0])

    def by_label(index: Any, values: Any) -> Any:
        return torch.zeros(n_classes, dtype=torch.float64).scatter_add_(0, index, values.double())

    totals["voxels"] += torch.bincount(label, minlength=n_classes)[:n_classes].double()
    totals["probability"] += by_label(label, max_probability)
    edge = label[boundary]
    totals["boundary_voxels"] += torch.bincount(edge, minlength=n_classes)[:n_classes].double()
    totals["boundary_probability"] += by_label(edge, max_probability[boundary])
    for value in range(n):  # summed probability = sum over voxels of exp(l_c - max) / sum_c exp(l_c - max)
        totals["soft_volume"][value] += float(torch.dot(x[value].reshape(-1), max_probability))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread for these memory-bound passes: on 2 cores shared with other work, two threads spent more
    time waiting for each other than computing (full knee: 1.3 s on one thread, 5.5-6.7 s on two, load ~12)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def channel_argmax(x: Any, top: Any = None, *, dim: int = 0) -> Any:
    """torch's argmax over the channel axis ``dim`` as uint8, several times faster on a CPU (torch's own argmax
    over a non-contiguous axis is slow): the lowest channel equal to the maximum, as argmax picks."""
    import torch

    n = x.shape[dim]
    top = x.amax(dim, keepdim=True) if top is None else top.unsqueeze(dim)
    shape = [1] * x.ndim
    shape[dim] = n
    weights = torch.arange(n, 0, -1, dtype=torch.uint8, device=x.device).reshape(shape)
    return (n - ((x == top) * weights).amax(dim)).to(torch.uint8)


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
