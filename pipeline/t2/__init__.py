"""T2 mapping: the qDESS estimator (``qdess``), the multi-echo spin-echo fit (``mese``), T2 series from DICOM headers
(``series``), the superficial/deep split (``depth``), regional statistics (``statistics``) and the stage (``stage``)."""

from .mese import MeseFitOptions, MeseSeries, mese_t2_ms
from .qdess import (
    DOSMA_T1_MS,
    LOW_SPOILING,
    SPOILED,
    NotQDessError,
    QDessSeries,
    T2Params,
    compute_t2_map,
    expected_ratio,
    qdess_t2_ms,
)
from .series import load_qdess, mese_from_source, qdess_from_source, t2_series_from_source
from .stage import T2Result, run_t2, t2_availability, t2_stage
from .statistics import t2_statistics

__all__ = [
    "DOSMA_T1_MS",
    "LOW_SPOILING",
    "SPOILED",
    "MeseFitOptions",
    "MeseSeries",
    "NotQDessError",
    "QDessSeries",
    "T2Params",
    "T2Result",
    "compute_t2_map",
    "expected_ratio",
    "load_qdess",
    "mese_from_source",
    "mese_t2_ms",
    "qdess_from_source",
    "qdess_t2_ms",
    "run_t2",
    "t2_availability",
    "t2_series_from_source",
    "t2_stage",
    "t2_statistics",
]
