"""The T2 stage of an analysis: T2 when the image is a qDESS or a multi-echo spin-echo (MESE) DICOM series, a
stated reason otherwise.

Never silent: the result is a :class:`T2Result`, or a :class:`~pipeline.outcome.NotComputed` saying why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import GeometryMismatchError, InvalidInputError
from ..morphometry import Morphometry
from ..morphometry.mesh import Surface
from ..morphometry.thickness import mean_along_runs
from ..outcome import NotComputed
from ..volume import Volume
from . import depth as depth_split
from .depth import DEEP_OFFSET, SUPERFICIAL_OFFSET
from .mese import MeseSeries, mese_t2_ms
from .qdess import (
    LOW_SPOILING,
    LOW_SPOILING_NOTE,
    SPOILED,
    NotQDessError,
    QDessSeries,
    T2Params,
    compute_t2_map,
    finish_map,
)
from .statistics import rounded, t2_statistics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class T2Result:
    """Output of :func:`run_t2`: the map, the depth labels and the regional statistics.

    Attributes:
        method: qDESS "spoiled" or "low_spoiling"; MESE "mese_nlls" or "mese_loglinear".
        notes: remarks for the report (the low-spoiling caveat among them).
        regions: region name -> {mean, median, std, n_voxels, n_excluded, deep: {...}, superficial: {...}} in ms.
        t2map: float32 T2 map (ms) on the echo grid; ``params.map_fill_ms`` where invalid.
        depth_labels: uint16 map on the same grid: region id + 100 (deep) or + 200 (superficial), 0 elsewhere.
        acquisition: TR, TE, flip angle and spoiler values used.
        params: the constants used.
    """

    method: str
    notes: tuple[str, ...]
    regions: dict
    t2map: Volume
    depth_labels: Volume
    acquisition: dict
    params: T2Params
    sequence: str = "qDESS"
    fit: dict | None = None
    surfaces: dict[str, Surface] = field(default_factory=dict)  # bones with a ``t2_ms`` point array (colouring)

    computed = True

    @property
    def warning(self) -> str | None:
        """The low-spoiling or unhandled-noise-floor caveat, when it applies (a QC warning)."""
        return next((n for n in self.notes if "low-spoiling" in n or "noise floor was not handled" in n), None)

    def to_dict(self) -> dict:
        """JSON-ready summary for the ``t2`` section of results.json (no NaN: missing values are None)."""
        return {
            "computed": True,
            "sequence": self.sequence,
            "method": self.method,
            "fit": self.fit,
            "note": next((n for n in self.notes if "low-spoiling" in n), None),
            "notes": list(self.notes),
            "units": "ms",
            "statistics_range_ms": {
                "exclusive_min": self.params.stats_range_ms[0],
                "inclusive_max": self.params.stats_range_ms[1],
            },
            "regions": rounded(self.regions),
            "depth": {
                "threshold": self.params.depth_threshold,
                "deep_offset": DEEP_OFFSET,
                "superficial_offset": SUPERFICIAL_OFFSET,
                "method": "relative depth d_bone / (d_bone + d_articular) from voxel distance transforms",
            },
            "acquisition": self.acquisition,
            "params": self.params.to_dict(),
        }


def run_t2(
    series: QDessSeries | MeseSeries, labels: Volume, region_map: np.ndarray, params: T2Params = T2Params()
) -> T2Result:
    """T2 map, superficial/deep split and regional statistics for one knee.

    Args:
        series: the qDESS or MESE echoes and header values (``series.t2_series_from_source``).
        labels: canonical label map on the echo grid (bones 1-3 and cartilage 4-7 drive the depth split).
        region_map: region id per voxel on that grid (``anatomy.region_map``), uint8 (nk, nj, ni).
        params: estimator constants and reporting ranges.

    Raises:
        GeometryMismatchError: the label map is not on the echoes' voxel grid.
    """
    problems = series.grid.same_grid(labels)
    if problems:
        raise GeometryMismatchError(
            f"T2: the label map is not on the {series.sequence} voxel grid (" + "; ".join(problems) + "). Segment "
            f"the {series.sequence} series itself (its echo combination), or resample the labels onto it first. "
            "A label map made on another series of the same knee is supported only when the grids match."
        )
    if np.shape(region_map) != labels.array.shape:
        raise GeometryMismatchError(
            f"T2: region map shape {np.shape(region_map)} differs from the label map {labels.array.shape}."
        )
    t2map, method, notes, fit = _t2_map(series, labels, params)
    split = depth_split.split_depth(labels, region_map, threshold=params.depth_threshold)
    notes.extend(split.notes)
    regions = t2_statistics(t2map, region_map, split.labels, params)
    logger.info("%s T2 (%s): femoral mean %s ms", series.sequence, method, regions["femoral"]["mean"])
    depth_volume = labels.with_array(split.labels, quantity="cartilage depth labels")
    return T2Result(
        method, tuple(notes), regions, t2map, depth_volume, series.acquisition_dict(), params, series.sequence, fit
    )


def _t2_map(
    series: QDessSeries | MeseSeries, labels: Volume, params: T2Params
) -> tuple[Volume, str, list[str], dict | None]:
    """(T2 map, method, notes, fit record) for either sequence."""
    notes = list(series.notes)
    if isinstance(series, MeseSeries):
        raw, fit = mese_t2_ms(series, params.mese)
        if fit["noise_handling"] != "none" and fit["noise_sigma"] is None:
            notes.append(
                "MESE T2: no air background was found to measure the noise level, so the noise floor was not "
                "handled; late echoes near the noise floor may bias T2 upward."
            )
        method = f"mese_{params.mese.estimator}"
        t2map = series.grid.with_array(finish_map(raw, params), quantity="T2", units="ms", t2_method=method)
        return t2map, method, notes, fit
    t2map = compute_t2_map(series, params, labels)
    method = t2map.meta["t2_method"]
    if method == LOW_SPOILING and series.method == SPOILED:
        notes.append(LOW_SPOILING_NOTE.format(why="the analysis was configured to use it for every scan"))
    if method == LOW_SPOILING:
        logger.warning("qDESS T2 used the low-spoiling approximation (no usable GE spoiler tags)")
    return t2map, method, notes, None


def t2_availability(image: str | Path | None) -> tuple[bool, str]:
    """Whether T2 can be attempted for an image input path, and the reason when not (for the UI, before loading)."""
    if image is None:
        return False, NO_IMAGE_REASON
    path = Path(image)
    if path.is_dir() or path.name.lower().endswith(".zip"):
        return True, "T2 will be computed if the series is qDESS (2 echoes) or multi-echo spin echo (4+ echoes)."
    return False, no_echoes_reason(path.name)


NO_IMAGE_REASON = "T2 needs the qDESS or multi-echo spin-echo MRI (a DICOM folder or zip); only a label map was given."


def no_echoes_reason(name: str) -> str:
    return (
        f"T2 needs a qDESS or multi-echo spin-echo DICOM series (folder or zip); {name} has no echo and timing "
        "information."
    )


def t2_stage(
    image: Volume | None,
    labels: Volume,
    morph: Morphometry,
    *,
    requested: bool | None,
    params: T2Params | None = None,
) -> T2Result | NotComputed:
    """T2 for one knee, if its image allows it.

    Args:
        image: the loaded MRI (its ``source`` holds the DICOM echoes and headers), or None.
        labels: canonical label map on the image grid.
        morph: the morphometry of ``labels``: its cartilage regions per voxel give the regional statistics, its bone
            surfaces and thickness runs the mean T2 across the cartilage along each bone normal (``surfaces``).
        requested: True = the user asked for T2 (a warning says why when it cannot run), None = automatic
            (computed for a qDESS or MESE series, silently skipped otherwise), False = skip.
    """
    from .series import t2_series_from_source

    if requested is False:
        return NotComputed("T2 not requested.")
    if image is None or image.source is None:
        reason = (
            NO_IMAGE_REASON
            if image is None
            else no_echoes_reason(image.meta.get("file_name") or "the image (given in memory)")
        )
        return NotComputed(reason, warning=reason if requested else None)
    try:
        series = t2_series_from_source(image.source)
    except NotQDessError as exc:
        return NotComputed(f"Not a T2 series (qDESS or MESE): {exc}", warning=str(exc) if requested else None)
    except InvalidInputError as exc:
        message = f"T2 skipped: {exc}"
        return NotComputed(message, warning=message)
    result = run_t2(series, labels, morph.regions, params or T2Params())
    return replace(result, surfaces=t2_coloured_surfaces(result.t2map, morph))


def t2_coloured_surfaces(t2map: Volume, morph: Morphometry) -> dict[str, Surface]:
    """Each bone with a ``t2_ms`` point array: the mean T2 across the cartilage along the vertex's normal (the same
    runs its thickness was measured along), for colouring the 3-D view by T2."""
    surfaces = {}
    for bone, tmap in morph.thickness_maps.items():
        surface = morph.surfaces[bone]
        surfaces[bone] = surface.with_point_data(t2_ms=mean_along_runs(surface, tmap, t2map))
    return surfaces
