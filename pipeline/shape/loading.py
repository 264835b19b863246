"""Loading the published shape model once, from the same weights manifest and cache as segmentation."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .stage import ShapeOptions, load_shape_model

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "nsm_647"


def bscore_dir() -> Path:
    """Where the BScore vectors live: ``KNEESCOPE_BSCORE_DIR``, else ``<weights cache>/bscore``."""
    from ..weights import weights_dir

    return Path(os.environ.get("KNEESCOPE_BSCORE_DIR") or weights_dir() / "bscore")


def load_shape_options(
    *, model: str = DEFAULT_MODEL, device: str | None = None, download: bool = False
) -> tuple[ShapeOptions | None, str | None]:
    """(options with the model loaded, None), or (None, why it is unavailable) when the gated weights are absent."""
    from ..errors import WeightsUnavailableError
    from ..weights import resolve_model

    try:
        resolved = resolve_model(model, download=download)
    except WeightsUnavailableError as exc:
        return None, f"Shape model unavailable: {exc}"
    model_id = model.rsplit("_", 1)[-1]
    loaded = load_shape_model(resolved.base, model_id, device=None if device in (None, "auto") else device)
    if isinstance(loaded, str):
        return None, loaded
    logger.info("shape model %s loaded (%s)", model, resolved.revision)
    return ShapeOptions(
        model_dir=resolved.base, bscore_dir=bscore_dir(), model=loaded, revision=resolved.revision
    ), None
