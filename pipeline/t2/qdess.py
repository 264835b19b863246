"""qDESS T2 mapping: read a two-echo qDESS DICOM series, compute the T2 map, pool it by cartilage region and depth.

The estimator is the analytic one of Sveinsson et al. (MRI 38:63-70, 2017), as DOSMA and the predecessor
pipeline implement it (reference-pipeline §2.8). With S1, S2 the echo-1 (S+, FID) and echo-2 (S-, echo)
magnitudes, TR and TE in seconds and alpha the flip angle::

    T2 [ms] = -2000 (TR - TE) / (ln(|S2 / S1| / k) + c1)
    k       = sin^2(alpha/2) (1 + E) / (1 - cos(alpha) E)

* **spoiled** (GE private tags GL area (0019,10B6) and Tg (0019,10B7, us) present, numeric and non-zero):
  Tg = TG 1e-6 s, Gl = GlArea / (Tg 1e6) 100, dkL = gamma Gl Tg, E = exp(-TR/T1 - TR dkL^2 D),
  c1 = (TR - Tg/3) dkL^2 D;
* **low-spoiling** (Sveinsson eqs. 6-7; the tags are missing, zero or unreadable, which anonymisation often
  causes): E = exp(-TR/T1), c1 = 0. It reads lower than the spoiled estimate, by ~1.4 % at 10-20 ms and
  ~5.4 % at 60-80 ms, so the method used is always reported.

T1 is an assumed value, recorded in ``T2Params``: by default 1200 ms for every tissue, as the predecessor did (it
used DOSMA's femoral-cartilage T1, ``FemoralCartilage.T1_EXPECTED``, for all tissues). DOSMA itself, called per
tissue, assumes 1000 ms for tibial and patellar cartilage and meniscus: ``T2Params(t1_by_tissue_ms=DOSMA_T1_MS)``
reproduces that. Everything here is vectorised numpy and does no I/O (the series comes from ``series``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .. import labels as L
from ..errors import InvalidInputError
from ..volume import Volume
from .mese import MeseFitOptions

logger = logging.getLogger(__name__)
GL_AREA_TAG = (0x0019, 0x10B6)  # GE "GL area": spoiler gradient area, GE units (see T2Params)
TG_TAG = (0x0019, 0x10B7)  # GE "TG": spoiler gradient duration, microseconds
GE_PRIVATE_CREATOR = "GEMS_ACQU_01"
SPOILED = "spoiled"
LOW_SPOILING = "low_spoiling"
#: DOSMA's expected T1 per tissue (ms), used when it maps one tissue at a time (next-wave-notes, qDESS section).
DOSMA_T1_MS: tuple[tuple[str, float], ...] = (
    (L.FEMORAL_CARTILAGE, 1200.0),
    (L.MEDIAL_TIBIAL_CARTILAGE, 1000.0),
    (L.LATERAL_TIBIAL_CARTILAGE, 1000.0),
    (L.PATELLAR_CARTILAGE, 1000.0),
    (L.MEDIAL_MENISCUS, 1000.0),
    (L.LATERAL_MENISCUS, 1000.0),
)
#: qDESS is a steady-state sequence with TR of ~15-30 ms; a TR above this is a spin-echo-type series, not qDESS.
MAX_QDESS_TR_MS = 100.0


class NotQDessError(InvalidInputError):
    """The input is not a (complete) two-echo qDESS series, so no T2 can be computed; other analyses still can."""


LOW_SPOILING_NOTE = (
    "T2 was computed with the low-spoiling approximation (Sveinsson 2017, eqs. 6-7) because {why}. This estimate "
    "reads lower than the spoiled one (about 1.4 % at 10-20 ms, 5.4 % at 60-80 ms): compare T2 only between scans "
    "processed with the same method. For the spoiled estimate, export the series with the GE private tags "
    "(0019,10B6) and (0019,10B7) kept."
)


@dataclass(frozen=True)
class T2Params:
    """Constants of the T2 estimates (qDESS and MESE) and their reporting. Times in ms unless named otherwise.

    Attributes:
        t1_ms: qDESS: T1 assumed for every voxel (predecessor: ``FemoralCartilage.T1_EXPECTED`` = 1200 ms for all).
        t1_by_tissue_ms: qDESS: (structure, T1) pairs overriding ``t1_ms`` on that structure's voxels, e.g.
            ``DOSMA_T1_MS`` (1000 ms for tibial/patellar cartilage and menisci, as DOSMA per tissue); () = none.
        diffusivity_m2_s: apparent diffusion coefficient D used by the spoiled estimator (1.25e-9 m^2/s).
        gamma_rad_per_gauss_s: proton gyromagnetic ratio as the predecessor writes it, 4258 * 2 pi rad/(G s).
            With it, Gl = GlArea / Tg[us] * 100 is in G/m, so GE's GL area is read as G us/cm.
        map_range_ms: T2 values outside this closed interval are replaced by ``map_fill_ms`` in the map
            (predecessor: [0, 100] -> 0).
        map_fill_ms: value written where the map is invalid (0 as the predecessor; NaN also works).
        map_decimals: the map is rounded to this many decimals (predecessor: 1); None keeps full precision.
        stats_range_ms: values v with lo < v <= hi enter the regional statistics; the rest (including the map's
            fill value) are excluded, never averaged as zeros. The predecessor also excluded exactly 80.0 ms.
        depth_threshold: relative depth below which a cartilage voxel is "deep" (pymskt: 0.5).
        method: qDESS: "auto" (spoiled when the tags allow it) or "low_spoiling" (force it, e.g. to match a cohort).
        mese: how a multi-echo spin-echo series is fitted (estimator, first echo, noise floor).
    """

    t1_ms: float = 1200.0
    t1_by_tissue_ms: tuple[tuple[str, float], ...] = ()
    diffusivity_m2_s: float = 1.25e-9
    gamma_rad_per_gauss_s: float = 4258.0 * 2.0 * math.pi
    map_range_ms: tuple[float, float] = (0.0, 100.0)
    map_fill_ms: float = 0.0
    map_decimals: int | None = 1
    stats_range_ms: tuple[float, float] = (0.0, 80.0)
    depth_threshold: float = 0.5
    method: str = "auto"
    mese: MeseFitOptions = field(default_factory=MeseFitOptions)

    def __post_init__(self) -> None:
        unknown = [name for name, _ in self.t1_by_tissue_ms if name not in L.CANONICAL]
        if unknown:
            raise ValueError(f"T2Params.t1_by_tissue_ms names unknown structures {unknown}")
        if self.method not in ("auto", LOW_SPOILING):
            raise ValueError(f"T2Params.method must be 'auto' or '{LOW_SPOILING}', got {self.method!r}")
        if not 0.0 < self.depth_threshold < 1.0:
            raise ValueError(f"T2Params.depth_threshold must lie in (0, 1), got {self.depth_threshold}")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["t1_by_tissue_ms"] = dict(self.t1_by_tissue_ms)
        return out


@dataclass(frozen=True)
class QDessSeries:
    """The two echoes of one qDESS acquisition and the header values the T2 estimate needs.

    Attributes:
        echo1, echo2: S+ (FID) and S- (echo) magnitudes on one voxel grid, arrays (nk, nj, ni).
        tr_ms, te_ms: repetition time and echo-1 echo time (ms).
        flip_deg: flip angle (degrees).
        gl_area: GE spoiler GL area (0019,10B6), None when missing/unusable.
        tg_us: GE spoiler duration TG (0019,10B7) in microseconds, None when missing/unusable.
        method: "spoiled" or "low_spoiling", decided from the tags (see :func:`choose_method`).
        notes: human-readable remarks for the report (why low-spoiling, unconfirmed sequence type, ...).
        source: where it came from (series description, number of files, ...).
    """

    echo1: Volume
    echo2: Volume
    tr_ms: float
    te_ms: float
    flip_deg: float
    gl_area: float | None
    tg_us: float | None
    method: str
    notes: tuple[str, ...] = ()
    source: dict = field(default_factory=dict, compare=False)

    sequence = "qDESS"

    @property
    def grid(self) -> Volume:
        return self.echo1

    @classmethod
    def from_volumes(
        cls,
        echo1: Volume,
        echo2: Volume,
        *,
        tr_ms: float | None,
        te_ms: float | None,
        flip_deg: float | None,
        gl_area: object = None,
        tg_us: object = None,
        notes: tuple[str, ...] = (),
        source: dict | None = None,
        name: str = "qDESS series",
        ignore_spoiler_tags: str | None = None,
    ) -> QDessSeries:
        """Validate echoes and timing, read the spoiler values and decide the estimator.

        ``gl_area``/``tg_us`` may be raw header values (str, bytes, numbers); unusable ones mean low-spoiling.
        ``ignore_spoiler_tags`` is a reason to disregard them (e.g. they belong to another vendor's private block).
        Raises InvalidInputError when the echoes differ in geometry or TR/TE/flip angle are missing or implausible.
        """
        problems = echo1.same_grid(echo2)
        if problems:
            raise InvalidInputError(
                f"{name}: echo 2 does not share echo 1's geometry ({'; '.join(problems)}). Both qDESS echoes must "
                "come from one acquisition; export the complete original series again."
            )
        tr, te, flip = _check_timing(tr_ms, te_ms, flip_deg, name)
        gl, gl_why = parse_spoiler_value(gl_area, "GL area (0019,10B6)")
        tg, tg_why = parse_spoiler_value(tg_us, "TG (0019,10B7)")
        if ignore_spoiler_tags:
            gl, tg, gl_why, tg_why = None, None, ignore_spoiler_tags, None
        method, why = choose_method(gl, tg, tr)
        all_notes = list(notes)
        if method == LOW_SPOILING:
            if gl_area is None and tg_us is None:
                reason = (
                    "the GE spoiler tags GL area (0019,10B6) and TG (0019,10B7) are missing (anonymisation "
                    "often removes them)"
                )
            else:
                reason = " and ".join(r for r in (why, gl_why, tg_why) if r)
            all_notes.append(LOW_SPOILING_NOTE.format(why=reason))
        # The parsed tag values are kept for the report; compute_t2_map uses them only when method is "spoiled".
        return cls(echo1, echo2, tr, te, flip, gl, tg, method, tuple(all_notes), dict(source or {}))

    def acquisition_dict(self) -> dict:
        return {
            "repetition_time_ms": self.tr_ms,
            "echo_time_ms": self.te_ms,
            "flip_angle_deg": self.flip_deg,
            "gl_area": self.gl_area,
            "tg_us": self.tg_us,
        }


# --- header values ---------------------------------------------------------------------------------------------
def _check_timing(tr_ms, te_ms, flip_deg, name: str) -> tuple[float, float, float]:
    values = {"RepetitionTime (TR)": _number(tr_ms), "EchoTime (TE)": _number(te_ms), "FlipAngle": _number(flip_deg)}
    missing = [k for k, v in values.items() if v is None or v <= 0]
    if missing:
        raise InvalidInputError(
            f"{name}: the DICOM header lacks a usable {', '.join(missing)}; qDESS T2 needs TR, TE and the flip angle. "
            "Export the series with its standard MR header fields."
        )
    tr, te, flip = (float(v) for v in values.values() if v is not None)
    if te >= tr or tr > MAX_QDESS_TR_MS:
        raise NotQDessError(
            f"{name}: TR {tr:g} ms and echo-1 TE {te:g} ms are not those of qDESS, a double-echo steady-state "
            f"sequence with TE < TR <= {MAX_QDESS_TR_MS:g} ms (typically TR 15-30 ms); this is not a qDESS series. "
            "T2 mapping needs the qDESS series; other series can still be segmented without T2."
        )
    if not 0 < flip < 180:
        raise InvalidInputError(f"{name}: flip angle {flip:g} deg is outside (0, 180); the header looks corrupt.")
    return tr, te, flip


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def parse_spoiler_value(raw: object, label: str) -> tuple[float | None, str | None]:
    """A GE spoiler tag value as a positive float, or (None, reason) when it is missing, zero or unreadable.

    Zero is DOSMA's own "no spoiler parameters" value, so it is treated as missing. Bytes come from tags whose
    VR was lost (UN); GE writes these tags as decimal strings, so they are decoded as ASCII.
    """
    if raw is None:
        return None, f"the {label} tag is missing"
    value: Any = raw
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", errors="replace").strip("\x00 ")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) == 1 else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, f"the {label} tag is not a number ({str(raw)[:20]!r})"
    if not np.isfinite(number) or number <= 0:
        return None, f"the {label} tag is {number:g} (zero or negative means no spoiler information)"
    return number, None


def choose_method(gl_area: float | None, tg_us: float | None, tr_ms: float) -> tuple[str, str | None]:
    """("spoiled", None) when both spoiler values are usable, else "low_spoiling" with a reason.

    The reason is None when a value is simply absent (:func:`parse_spoiler_value` says why).
    """
    if gl_area is None or tg_us is None:
        return LOW_SPOILING, None
    if tg_us * 1e-3 >= tr_ms:
        return LOW_SPOILING, f"the spoiler duration TG ({tg_us:g} us) is not shorter than TR ({tr_ms:g} ms)"
    return SPOILED, None


# --- the estimator ---------------------------------------------------------------------------------------------
def qdess_constants(
    tr_ms: float, flip_deg: float, *, gl_area: float | None, tg_us: float | None, params: T2Params = T2Params()
) -> tuple[float, float]:
    """(k, c1) of the estimator; low-spoiling when ``gl_area`` or ``tg_us`` is None."""
    tr, t1, alpha = tr_ms * 1e-3, params.t1_ms * 1e-3, math.radians(flip_deg)
    if gl_area is None or tg_us is None:
        e, c1 = math.exp(-tr / t1), 0.0
    else:
        tg = tg_us * 1e-6
        gl = gl_area / (tg * 1e6) * 100.0  # G/m
        dkl = params.gamma_rad_per_gauss_s * gl * tg  # rad/m: dephasing across a voxel per TR by the spoiler
        diffusion = dkl**2 * params.diffusivity_m2_s  # 1/s
        e = math.exp(-tr / t1 - tr * diffusion)
        c1 = (tr - tg / 3.0) * diffusion
    k = math.sin(alpha / 2) ** 2 * (1 + e) / (1 - math.cos(alpha) * e)
    return k, c1


def qdess_t2_ms(
    s1: np.ndarray,
    s2: np.ndarray,
    *,
    tr_ms: float,
    te_ms: float,
    flip_deg: float,
    gl_area: float | None = None,
    tg_us: float | None = None,
    params: T2Params = T2Params(),
) -> np.ndarray:
    """Raw T2 (ms, float32) per voxel, unclipped; NaN where S1 <= 0. ``s1``, ``s2``: broadcastable arrays."""
    k, c1 = qdess_constants(tr_ms, flip_deg, gl_area=gl_area, tg_us=tg_us, params=params)
    s1, s2 = np.broadcast_arrays(np.asarray(s1, dtype=np.float32), np.asarray(s2, dtype=np.float32))
    # One float32 work array, updated in place: a 384 x 384 x 160 volume needs ~95 MB per temporary.
    t2 = np.array(s2, dtype=np.float32, copy=True)
    np.abs(t2, out=t2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.divide(t2, s1, out=t2)
        np.log(t2, out=t2)
        t2 += np.float32(c1 - math.log(k))
        np.divide(np.float32(-2.0 * (tr_ms - te_ms)), t2, out=t2)
    t2[~(s1 > 0)] = np.nan  # no signal in echo 1: no estimate
    return t2


def expected_ratio(
    t2_ms: np.ndarray | float,
    *,
    tr_ms: float,
    te_ms: float,
    flip_deg: float,
    gl_area: float | None = None,
    tg_us: float | None = None,
    params: T2Params = T2Params(),
):
    """S2/S1 that the model predicts for a given T2 (ms): the inverse of :func:`qdess_t2_ms` (simulation, QC)."""
    k, c1 = qdess_constants(tr_ms, flip_deg, gl_area=gl_area, tg_us=tg_us, params=params)
    return k * np.exp(-2.0 * (tr_ms - te_ms) / np.asarray(t2_ms, dtype=float) - c1)


def compute_t2_map(series: QDessSeries, params: T2Params = T2Params(), labels: Volume | None = None) -> Volume:
    """The T2 map (ms, float32) on the echo grid, clipped as the predecessor's P_t2map (see :func:`finish_map`).

    ``labels`` (canonical, on the echo grid) is needed only for ``params.t1_by_tissue_ms``.
    """
    method = LOW_SPOILING if params.method == LOW_SPOILING else series.method
    spoiled = method == SPOILED

    def estimate(s1: np.ndarray, s2: np.ndarray, t2_params: T2Params) -> np.ndarray:
        return qdess_t2_ms(
            s1,
            s2,
            tr_ms=series.tr_ms,
            te_ms=series.te_ms,
            flip_deg=series.flip_deg,
            gl_area=series.gl_area if spoiled else None,
            tg_us=series.tg_us if spoiled else None,
            params=t2_params,
        )

    t2 = estimate(series.echo1.array, series.echo2.array, params)
    if params.t1_by_tissue_ms and labels is None:
        raise ValueError("compute_t2_map: T1 per tissue needs the label map")
    for structure, t1_ms in params.t1_by_tissue_ms:
        mask = labels.array == L.CANONICAL[structure]  # type: ignore[union-attr]
        t2[mask] = estimate(series.echo1.array[mask], series.echo2.array[mask], replace(params, t1_ms=t1_ms))
    return series.echo1.with_array(finish_map(t2, params), quantity="T2", units="ms", t2_method=method)


def finish_map(t2: np.ndarray, params: T2Params) -> np.ndarray:
    """Clip a raw float32 T2 map in place as the predecessor's P_t2map, and return it.

    Values outside ``params.map_range_ms`` (and NaN/inf) become ``params.map_fill_ms`` (0); the rest are rounded to
    ``params.map_decimals`` (1).
    """
    lo, hi = params.map_range_ms
    with np.errstate(invalid="ignore"):
        invalid = ~((t2 >= lo) & (t2 <= hi))  # NaN compares False: invalid too
    if params.map_decimals is not None:
        np.round(t2, params.map_decimals, out=t2)
    t2[invalid] = params.map_fill_ms
    return t2
