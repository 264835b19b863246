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
from .limits import MEASURE_COST, CaseCost, ImageLimits
from .sanity import check_finite_labels, check_geometry, finite_image


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
    *,
    image_cost: CaseCost | None = None,
) -> Inputs:
    """Read what is not read yet; the label map is converted to canonical values (``scheme``).

    ``image_cost``: what will be done with the image (segmenting it costs far more than overlaying labels on it),
    checked against the case's memory budget from the image's header; a label map costs ``MEASURE_COST``.
    """
    limits = limits or ImageLimits.from_env()
    return Inputs(
        read_image(image, limits.for_work(image_cost or MEASURE_COST)),
        read_labels(labels, scheme, limits.for_work(MEASURE_COST)),
    )


def read_image(image: str | Path | Volume | None, limits: ImageLimits | None = None) -> Volume | None:
    """The image read from its file (checked there), or a Volume given in memory, checked the same way."""
    if isinstance(image, (str, Path)) or image is None:
        return load_image(image, limits=limits) if image is not None else None
    name = str(image.meta.get("file_name") or "the image")
    check_geometry(image, name)
    return finite_image(image, name)


def read_labels(
    labels: str | Path | Volume | LoadedLabels | None, scheme: SchemeSpec = "auto", limits: ImageLimits | None = None
) -> LoadedLabels | None:
    if labels is None or isinstance(labels, LoadedLabels):
        return labels
    if isinstance(labels, Volume):
        name = str(labels.meta.get("file_name") or "label map")
        check_geometry(labels, name)
        check_finite_labels(labels, name)
        return to_canonical(labels, scheme, name=name)
    return load_label_map(labels, scheme, limits=limits)
