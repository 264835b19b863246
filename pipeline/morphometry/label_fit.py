"""Does a given label map belong to its image, left-right? Evidence that needs no model.

A label map of the other knee on the same grid (typically one flipped left-right by a tool that ignored the
header, or the contralateral knee's segmentation) passes every geometry check and yields plausible numbers for
the wrong anatomy. Two kinds of evidence are used:

* **The image content.** A segmentation explains its image: each structure has its own signal. Mirrored across
  the patient's left-right axis, the label map agrees with itself in most voxels (the knee is nearly symmetric)
  and disagrees in the rest: the fibula, the condyles, the compartments. Those voxels decide: with each label's
  mean intensity taken where the two versions agree, is the image there closer to what the label map says, or to
  what its mirror says? The score, (SSE_given - SSE_mirrored) / (SSE_given + SSE_mirrored), lies in -1..1 and is
  antisymmetric: a correct label map scores clearly negative (-0.85 on the synthetic knee, -0.55 with five times
  the noise), its mirror image the same amount positive, and a label map unrelated to the image gives no warning
  unless its mirror fits better. No absolute intensity threshold is involved, so it suits any sequence.
* **The DICOM header.** ``ImageLaterality`` (0020,0062) or ``Laterality`` (0020,0060), when the scanner wrote
  it, names the knee; a label map describing the other one is reported.

The model-free check cannot say which knee an image shows when the labels fit neither way, and the header
check only applies to DICOM series that carry the tag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..volume import Volume

MIRROR_SCORE_WARNING = 0.25  # score above which the mirrored label map is called the better fit
MAX_ANALYSED_VOXELS = 8_000_000  # beyond this the region is subsampled (the score is a global statistic)
MIN_REFERENCE_VOXELS = 50


@dataclass(frozen=True)
class LabelFit:
    """Which way round the label map explains the image: ``mirror_score`` > 0 when mirrored left-right fits better.

    Attributes:
        mirror_score: (SSE_given - SSE_mirrored) / (SSE_given + SSE_mirrored) over the voxels where the two differ.
        n_voxels: how many voxels decided it.
    """

    mirror_score: float
    n_voxels: int

    @property
    def mirrored_fits_better(self) -> bool:
        return self.mirror_score > MIRROR_SCORE_WARNING


def left_right_axis(volume: Volume) -> int | None:
    """The array axis (numpy order k, j, i) running along the patient's left-right, None for oblique grids."""
    x_components = np.abs(volume.direction[0, :])  # LPS x of index axes i, j, k
    index_axis = int(np.argmax(x_components))
    if x_components[index_axis] < 0.9:
        return None
    return 2 - index_axis


def label_fit(image: Volume, labels: Volume) -> LabelFit | None:
    """The mirror score of a label map on its image (same grid); None when not comparable."""
    axis = left_right_axis(labels)
    if axis is None or image.array.shape != labels.array.shape or image.array.ndim != 3:
        return None
    given, mirrored = labels.array, np.flip(labels.array, axis=axis)
    foreground = (given > 0) | (mirrored > 0)
    if not foreground.any():
        return None
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(foreground))
    step = max(1, int(np.ceil((foreground[box].size / MAX_ANALYSED_VOXELS) ** (1 / 3))))
    box = tuple(slice(s.start, s.stop, step) for s in box)
    g, m, x = given[box], mirrored[box], image.array[box].astype(np.float64)
    means = _label_means(x, g, m)
    differ = g != m
    if not differ.any():
        return None  # symmetric about the grid's centre: no evidence either way
    xd = x[differ]
    sse_given = float(np.sum((xd - means[g[differ]]) ** 2))
    sse_mirrored = float(np.sum((xd - means[m[differ]]) ** 2))
    total = sse_given + sse_mirrored
    return LabelFit((sse_given - sse_mirrored) / total if total > 0 else 0.0, int(differ.sum()))


def _label_means(x: np.ndarray, given: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Mean intensity per label value from the voxels where both versions agree (where the label is known),
    or, for a label that is nowhere in agreement, from every voxel either version gives it (favouring neither)."""
    agree = given == mirrored
    means = np.zeros(int(max(given.max(), mirrored.max())) + 1)
    for value in np.union1d(np.unique(given), np.unique(mirrored)):
        chosen = agree & (given == value)
        if chosen.sum() < MIN_REFERENCE_VOXELS:
            chosen = (given == value) | (mirrored == value)
        means[value] = x[chosen].mean()
    return means


def header_side(image: Volume | None) -> str | None:
    """'right' or 'left' from the image's DICOM laterality tags, None when absent."""
    source = getattr(image, "source", None) if image is not None else None
    if source is None:
        return None
    for keyword in ("ImageLaterality", "Laterality"):
        value = str(source.value(keyword) or "").strip().upper()
        if value in ("R", "L"):
            return "right" if value == "R" else "left"
    return None


def laterality_warnings(image: Volume | None, labels: Volume, side: str, *, labels_given: bool) -> list[str]:
    """Warnings when the image's evidence contradicts the knee side the label map describes (``side``)."""
    warnings = []
    tagged = header_side(image)
    if tagged is not None and side in ("left", "right") and tagged != side:
        warnings.append(
            f"The DICOM header marks this image as the {tagged} knee, but the label map describes a {side} knee. "
            "Check that the label map belongs to this image (or that the header is right)."
        )
    if labels_given and image is not None:
        fit = label_fit(image, labels)
        if fit is not None and fit.mirrored_fits_better:
            warnings.append(
                f"The label map looks mirrored left-right against the image: it describes a {side} knee, but the "
                f"image fits the label map mirrored left-right better (mirror score {fit.mirror_score:+.2f}; -1 = "
                "fits as given, +1 = fits only mirrored). It may be the other knee's label map or one flipped on "
                "export; the results, T2 and overlays use it as given."
            )
    return warnings
