"""Which segmentation models exist, and choosing and loading one: manifest name -> resolved weights -> a Segmenter.

``Engine.from_spec`` (the one engine factory) chooses through ``choose_segmenter``; the engine loads further models
on first use through ``load_segmenter``. Nothing else builds a Segmenter from a model name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import InferenceOptions
from ..errors import WeightsUnavailableError
from ..io.limits import CaseCost
from .registry import SEGMENTATION_MODELS as _REGISTERED

if TYPE_CHECKING:
    from .segmenter import Segmenter

logger = logging.getLogger(__name__)

DEMO_MODEL = "demo"
#: The best segmentation model available without downloading: published weights if cached or in the model dir,
#: else the demo model, else none (label maps only). What the app serves.
AUTO_MODEL = "auto"
#: Segmentation models offered, best first (nnU-Net, the Goyal 2-D U-Nets, the demo).
SEGMENTATION_MODELS = _REGISTERED
DEMO_WARNING = (
    "Segmented by the KneeScope DEMO model, trained on synthetic knees only: on real MRI its labels and every "
    "number derived from them are meaningless."
)


@dataclass(frozen=True)
class ChosenModel:
    """The model an engine starts with: its name and segmenter (None for label maps only), and a notice for users
    when the demo model stands in for the one asked for."""

    name: str | None
    segmenter: Segmenter | None
    notice: str | None = None


def load_segmenter(model: str, model_dir: Path | None, inference: InferenceOptions, download: bool) -> Segmenter:
    """The model's weights resolved (cache, ``model_dir`` or download; see ``pipeline.weights``), verified and loaded.

    Raises:
        WeightsUnavailableError: missing, corrupt or unreachable weights, with what to do.
    """
    from ..weights import resolve_model
    from .registry import segmenter_class

    # A model dir holds a copy of the published models; the demo model always comes from this repository.
    resolved = resolve_model(model, model_dir=None if model == DEMO_MODEL else model_dir, download=download)
    return segmenter_class(resolved.entry).from_model(resolved, options=inference)


def segmentation_cost(model: str, model_dir: Path | None, *, fallback_to_demo: bool = False) -> CaseCost:
    """What segmenting with ``model`` costs per voxel, read from its files without loading it (the CLI checks an
    image with it before any model is loaded); the demo model's when the weights are unavailable and the demo
    would stand in, else the published architecture's (10 classes at 0.36 x 0.36 x 0.7 mm)."""
    from ..weights import resolve_model
    from .cost import cost_of_model_folder, nnunet_cost

    for name, folder in ((model, model_dir), *([(DEMO_MODEL, None)] if fallback_to_demo else [])):
        try:
            resolved = resolve_model(
                name, model_dir=None if name == DEMO_MODEL else folder, download=False, verify_checksums=False
            )
        except WeightsUnavailableError:
            continue
        cost = cost_of_model_folder(resolved.stage_dirs[-1]) if resolved.stage_dirs else None
        if cost is not None:
            return cost
    return nnunet_cost(10, PUBLISHED_SPACING_MM)


#: The published knee model's voxel size (platform notes: its plans for 384 x 384 x 160 DESS at 0.36 x 0.36 x 0.7).
PUBLISHED_SPACING_MM = (0.7, 0.36, 0.36)


def choose_segmenter(
    model: str, model_dir: Path | None, inference: InferenceOptions, *, download: bool, fallback_to_demo: bool
) -> ChosenModel:
    """The model asked for; AUTO_MODEL: the best available offline (or none); with ``fallback_to_demo``, the demo
    model and a notice when the weights asked for are unavailable and no model dir was given.

    Raises:
        WeightsUnavailableError: the model's weights are unavailable and there is no fallback.
    """
    if model == AUTO_MODEL:
        for name in SEGMENTATION_MODELS:
            try:
                return ChosenModel(name, load_segmenter(name, model_dir, inference, False))
            except WeightsUnavailableError as exc:
                logger.info("model %s not available: %s", name, exc)
        logger.error("no segmentation model could be loaded: label-map analysis only")
        return ChosenModel(None, None)
    try:
        return ChosenModel(model, load_segmenter(model, model_dir, inference, download))
    except WeightsUnavailableError as exc:
        if not fallback_to_demo or model == DEMO_MODEL or model_dir is not None:
            raise
        notice = (
            f"The '{model}' model is unavailable ({exc}) Using the DEMO model instead: it was trained on synthetic "
            "knees only, so results on real MRI are meaningless."
        )
    logger.info(notice)  # the caller shows the notice (the CLI prints it once, the app in its log and page)
    return ChosenModel(DEMO_MODEL, load_segmenter(DEMO_MODEL, None, inference, False), notice)
