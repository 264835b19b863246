"""An analysis's inputs read once: the image and the label map as the engine and the stages use them.

Files are read here (their headers checked before decoding); a Volume or a label map read already passes through
unchanged, so a caller that reads first (the CLI refuses a bad file before it loads a model) costs no second read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..volume import Volume
from .files import load_image
from .labelmaps import LoadedLabels, SchemeSpec, load_label_map, to_canonical
from .limits import ImageLimits


@dataclass(frozen=True)
class Inputs:
    """The image (None when only a label map is analysed) and the label map in canonical values (None: segment)."""

    image: Volume | None
    labels: LoadedLabels | None


def read_inputs(
    image: str | Path | Volume | None,
    labels: str | Path | Volume | LoadedLabels | None,
    scheme: SchemeSpec = "auto",
    limits: ImageLimits | None = None,
) -> Inputs:
    """Read what is not read yet; the label map is converted to canonical values (``scheme``)."""
    return Inputs(read_image(image, limits), read_labels(labels, scheme, limits))


def read_image(image: str | Path | Volume | None, limits: ImageLimits | None = None) -> Volume | None:
    return load_image(image, limits=limits) if isinstance(image, (str, Path)) else image


def read_labels(
    labels: str | Path | Volume | LoadedLabels | None, scheme: SchemeSpec = "auto", limits: ImageLimits | None = None
) -> LoadedLabels | None:
    if labels is None or isinstance(labels, LoadedLabels):
        return labels
    if isinstance(labels, Volume):
        return to_canonical(labels, scheme, name=str(labels.meta.get("file_name") or "label map"))
    return load_label_map(labels, scheme, limits=limits)
