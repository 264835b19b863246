"""The T2 stage of an analysis: run qDESS T2 when the image is a qDESS DICOM series, say why not otherwise.

Never silent: the results' ``t2`` section always says whether T2 was computed and, if not, why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InvalidInputError
from .volume import Volume

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class T2Outcome:
    """What the T2 stage produced: the results.json section, and the maps when it ran."""

    section: dict
    t2map: Volume | None = None
    depth_labels: Volume | None = None
    warning: str | None = None


def t2_availability(image: str | Path | None) -> tuple[bool, str]:
    """Whether T2 can be attempted for this image input, and the reason when not (for the UI and CLI)."""
    if image is None:
        return False, "T2 needs the qDESS MRI (a DICOM folder or zip); only a label map was given."
    path = Path(image)
    if path.is_dir() or path.name.lower().endswith(".zip"):
        return True, "qDESS T2 will be computed if the series has two echoes."
    return False, (
        f"T2 needs a qDESS DICOM series (folder or zip); {path.name} has no echo and timing information."
    )


def run_t2_stage(image: str | Path | None, labels: Volume, regions: np.ndarray, *, requested: bool | None) -> T2Outcome:
    """Run T2 if possible. ``requested``: True = the user asked for it, None = automatic, False = skip."""
    from . import t2

    if requested is False:
        return T2Outcome({"computed": False, "reason": "T2 not requested."})
    possible, reason = t2_availability(image)
    if not possible:
        return T2Outcome({"computed": False, "reason": reason}, warning=reason if requested else None)
    try:
        series = t2.load_qdess(image)
    except t2.NotQDessError as exc:
        return T2Outcome({"computed": False, "reason": f"Not qDESS: {exc}"}, warning=str(exc) if requested else None)
    except InvalidInputError as exc:
        message = f"T2 skipped: {exc}"
        return T2Outcome({"computed": False, "reason": message}, warning=message)
    result = t2.run_t2(series, labels, regions)
    section = {"computed": True, **result.to_dict()}
    warning = section.get("note")
    return T2Outcome(section, result.t2map, result.depth_labels, warning=warning)
