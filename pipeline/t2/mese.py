"""Multi-echo spin-echo (MESE) T2: the mono-exponential fit of the OAI T2 protocol, vectorised over voxels.

Model: S(TE) = S0 exp(-TE / T2) (+ C with ``noise="offset"``). Two estimators:

* **log-linear**: weighted least squares of ln S on TE, weights S^2 (the variance of ln S is about sigma^2 / S^2,
  so unweighted log fits let the noisiest, latest echoes dominate);
* **non-linear least squares** (default): Levenberg-Marquardt on S itself, started from the log-linear estimate.

Conventions as in OAI analyses: the **first echo is excluded** by default (stimulated-echo contamination from
imperfect refocusing pulses raises it above the mono-exponential curve), and the **noise floor** is handled. A
magnitude image's noise is Rician: where the true signal falls to a few noise SDs the measured magnitude stays
above it (at 2 sigma by about 12 %) and the fitted decay flattens, so T2 is over-estimated. ``noise="exclude"``
(default) first fits every echo, then drops the echoes whose *fitted* signal is below ``noise_threshold`` x sigma
and refits; deciding on the fitted rather than the measured value avoids keeping only echoes that noise pushed
up. ``noise="offset"`` fits a constant floor C instead; ``noise="none"`` does neither.

sigma, the noise SD of one echo, is measured on the image's air background (:func:`estimate_noise_sigma`) unless
given. Everything here is pure numpy (no I/O); the series comes from ``pipeline.t2.series``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InvalidInputError
from ..volume import Volume

LOG_LINEAR = "loglinear"
NLLS = "nlls"
NOISE_MODES = ("exclude", "offset", "none")
#: Voxels fitted per chunk: (echoes x chunk) float64 work arrays stay around 100 MB for 8 echoes.
CHUNK_VOXELS = 400_000
MIN_ECHOES = 4
MAX_T2_MS = 1000.0  # fits are bounded: beyond this the decay over 80 ms is indistinguishable from flat


@dataclass(frozen=True)
class MeseFitOptions:
    """How MESE T2 is fitted (recorded in results.json under t2.params.mese).

    Attributes:
        estimator: "nlls" (Levenberg-Marquardt, started from the log-linear fit) or "loglinear".
        exclude_first_echo: drop echo 1 (stimulated-echo contaminated), as OAI analyses do.
        noise: "exclude" (drop echoes whose fitted signal is below noise_threshold x sigma, then refit),
            "offset" (fit S0 exp(-TE/T2) + C; nlls only) or "none".
        noise_threshold: in noise SDs, for noise="exclude".
        min_echoes: fewer usable echoes than this leave the voxel without an estimate.
        noise_sigma: noise SD of one echo in pixel units; None measures it on the air background.
        iterations: Levenberg-Marquardt iterations (a fixed number keeps the fit vectorised).
        min_signal_sigma: voxels whose first fitted echo is below this many noise SDs (air) get no estimate.
    """

    estimator: str = NLLS
    exclude_first_echo: bool = True
    noise: str = "exclude"
    noise_threshold: float = 3.0
    min_echoes: int = 3
    noise_sigma: float | None = None
    iterations: int = 25
    min_signal_sigma: float = 5.0

    def __post_init__(self) -> None:
        if self.estimator not in (NLLS, LOG_LINEAR):
            raise ValueError(f"MeseFitOptions.estimator must be '{NLLS}' or '{LOG_LINEAR}', got {self.estimator!r}")
        if self.noise not in NOISE_MODES:
            raise ValueError(f"MeseFitOptions.noise must be one of {NOISE_MODES}, got {self.noise!r}")
        if self.noise == "offset" and self.estimator != NLLS:
            raise ValueError("MeseFitOptions: noise='offset' needs the non-linear estimator (estimator='nlls')")
        if self.min_echoes < 2:
            raise ValueError("MeseFitOptions.min_echoes must be at least 2 (two points define the decay)")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MeseSeries:
    """The echoes of one multi-echo spin-echo acquisition, on one grid.

    Attributes:
        echoes: one Volume per echo, ordered by echo time, all on echo 1's grid.
        echo_times_ms: TE of each echo.
        tr_ms: repetition time (ms), None when the header lacks it.
        notes: remarks for the report (assumed sequence type, ...).
        source: series summary (description, number, manufacturer).
    """

    echoes: tuple[Volume, ...]
    echo_times_ms: tuple[float, ...]
    tr_ms: float | None
    notes: tuple[str, ...] = ()
    source: dict = field(default_factory=dict, compare=False)

    sequence = "MESE"

    def __post_init__(self) -> None:
        if len(self.echoes) != len(self.echo_times_ms):
            raise ValueError("MeseSeries: one echo time per echo")
        if len(self.echoes) < MIN_ECHOES:
            raise InvalidInputError(f"A multi-echo spin-echo T2 fit needs at least {MIN_ECHOES} echoes.")
        if any(b <= a for a, b in zip(self.echo_times_ms, self.echo_times_ms[1:], strict=False)):
            raise InvalidInputError(f"MESE echo times must increase, got {list(self.echo_times_ms)} ms.")

    @property
    def grid(self) -> Volume:
        return self.echoes[0]

    def acquisition_dict(self) -> dict:
        return {
            "sequence": "multi-echo spin echo",
            "repetition_time_ms": self.tr_ms,
            "echo_times_ms": list(self.echo_times_ms),
            "n_echoes": len(self.echoes),
        }


@dataclass(frozen=True)
class MeseFit:
    """Per-voxel fit (flattened voxels): T2 and S0, NaN where no estimate; echoes used per voxel."""

    t2_ms: np.ndarray
    s0: np.ndarray
    n_echoes_used: np.ndarray


# --- noise -----------------------------------------------------------------------------------------------------
def estimate_noise_sigma(echo: np.ndarray, *, bins: int = 400) -> float | None:
    """Noise SD of a magnitude image from its air background, or None when no background is found.

    Air holds only noise, whose magnitude is Rayleigh-distributed with its mode at sigma: sigma is taken as the
    lowest-intensity peak of the histogram. The peak must hold at least 2 % of the voxels and sit below the
    image's median, otherwise there is no air in view (a tightly cropped field) and None is returned.
    """
    from scipy import ndimage

    values = np.asarray(echo, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size < 1000:
        return None
    top = float(np.percentile(values, 60))
    if top <= 0:
        return None
    if np.all(values == np.round(values)):  # stored integers: bins narrower than 1 would comb the histogram
        bins = max(8, min(bins, int(top)))
    counts, edges = np.histogram(values, bins=bins, range=(0.0, top))
    smooth = ndimage.gaussian_filter1d(counts.astype(np.float64), 2.0)
    peaks = np.flatnonzero((smooth[1:-1] >= smooth[:-2]) & (smooth[1:-1] > smooth[2:])) + 1
    peaks = peaks[smooth[peaks] >= 0.1 * smooth.max()]  # ripples of a sparse histogram are not the air peak
    if peaks.size == 0:
        return None
    peak = int(peaks[0])
    mode = float((edges[peak] + edges[peak + 1]) / 2)
    cut = 2.5 * mode  # Rayleigh: 95.6 % of air lies below 2.5 sigma
    below = values[values < cut]
    if below.size < 0.02 * values.size or mode >= float(np.median(values)):
        return None
    return _rayleigh_sigma_from_truncated_median(float(np.median(below)), cut, mode)


def _rayleigh_sigma_from_truncated_median(median: float, cut: float, sigma: float, iterations: int = 20) -> float:
    """sigma of a Rayleigh sample whose values below ``cut`` have this median (fixed-point iteration from
    ``sigma``): the histogram mode alone is biased by binning and smoothing by several percent.

    Truncated at c, the median m solves F(m) = F(c) / 2 with F(x) = 1 - exp(-x^2 / (2 sigma^2)).
    """
    for _ in range(iterations):
        half = (1.0 - np.exp(-(cut * cut) / (2 * sigma * sigma))) / 2
        sigma = median / float(np.sqrt(-2.0 * np.log(1.0 - half)))
    return sigma


# --- estimators (signals: (n_echoes, n_voxels); te: (n_echoes,); use: bool mask like signals) -------------------
def loglinear_fit(
    signals: np.ndarray, te_ms: np.ndarray, use: np.ndarray | None = None, *, expected: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Weighted least squares of ln S = ln S0 - TE / T2. Returns (S0, T2 ms); NaN where undetermined.

    Weights are the squared signal, the inverse variance of ln S: the ``expected`` (fitted) signal when given,
    else the measured one (whose noise then leaks into the weights and biases T2 up by a few percent).
    """
    s = np.asarray(signals, dtype=np.float64)
    te = np.asarray(te_ms, dtype=np.float64)[:, None]
    ok = s > 0 if use is None else (np.asarray(use) & (s > 0))
    weight_from = s if expected is None else np.nan_to_num(np.asarray(expected, dtype=np.float64))
    w = np.where(ok, weight_from * weight_from, 0.0)
    y = np.log(np.where(ok, s, 1.0))
    sw, sx, sy = w.sum(0), (w * te).sum(0), (w * y).sum(0)
    sxx, sxy = (w * te * te).sum(0), (w * te * y).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        det = sw * sxx - sx * sx
        slope = (sw * sxy - sx * sy) / det
        intercept = (sy - slope * sx) / sw
        t2 = -1.0 / slope
    enough = ok.sum(0) >= 2
    valid = enough & np.isfinite(t2) & (t2 > 0) & (np.abs(det) > 1e-12)
    return np.where(valid, np.exp(intercept), np.nan), np.where(valid, np.minimum(t2, MAX_T2_MS), np.nan)


def nlls_fit(
    signals: np.ndarray,
    te_ms: np.ndarray,
    use: np.ndarray,
    s0: np.ndarray,
    t2_ms: np.ndarray,
    *,
    offset: bool = False,
    iterations: int = 25,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on S0 exp(-TE R2) (+ C), all voxels at once. Returns (S0, T2 ms, C).

    Parameters are (S0, R2 = 1/T2[, C]); each voxel has its own damping, raised when a step would increase its
    residual and lowered when it decreases it. Echoes with ``use`` False carry no weight.
    """
    s = np.asarray(signals, dtype=np.float64)
    te = np.asarray(te_ms, dtype=np.float64)[:, None]
    m = np.asarray(use, dtype=np.float64)
    n_par = 3 if offset else 2
    params = np.zeros((n_par, s.shape[1]))
    params[0] = np.nan_to_num(s0, nan=0.0)
    params[1] = 1.0 / np.nan_to_num(t2_ms, nan=MAX_T2_MS)
    good = np.isfinite(s0) & np.isfinite(t2_ms)

    def residual(p: np.ndarray) -> np.ndarray:
        model = p[0] * np.exp(-te * p[1]) + (p[2] if offset else 0.0)
        return (s - model) * m

    r = residual(params)
    cost = (r * r).sum(0)
    damping = np.full(s.shape[1], 1e-3)
    for _ in range(iterations):
        step = _lm_step(params, te, m, r, damping, offset)
        trial = params + step
        trial[1] = np.clip(trial[1], 1.0 / MAX_T2_MS, None)
        r_trial = residual(trial)
        cost_trial = (r_trial * r_trial).sum(0)
        better = cost_trial < cost
        if not better.any():
            break
        params = np.where(better, trial, params)
        r = np.where(better, r_trial, r)
        cost = np.where(better, cost_trial, cost)
        damping = np.where(better, damping * 0.3, damping * 10.0)
    t2 = np.where(good, 1.0 / params[1], np.nan)
    return params[0], np.minimum(t2, MAX_T2_MS), params[2] if offset else np.zeros(s.shape[1])


def _lm_step(params, te, m, r, damping, offset: bool) -> np.ndarray:
    """One damped Gauss-Newton step per voxel; the two-parameter system is solved in closed form (fast)."""
    decay = np.exp(-te * params[1]) * m
    j0, j1 = decay, -te * params[0] * decay
    if offset:
        j = np.stack([j0, j1, m])
        jtj = np.einsum("aen,ben->nab", j, j)
        jtj += (damping[:, None, None] * np.eye(3)[None]) * np.einsum("naa->na", jtj)[:, :, None]
        jtj += np.eye(3)[None] * 1e-12
        return np.linalg.solve(jtj, np.einsum("aen,en->na", j, r)[..., None])[..., 0].T
    a, b, c = (j0 * j0).sum(0), (j0 * j1).sum(0), (j1 * j1).sum(0)
    g0, g1 = (j0 * r).sum(0), (j1 * r).sum(0)
    a, c = a * (1 + damping) + 1e-12, c * (1 + damping) + 1e-12
    det = a * c - b * b
    return np.stack([(c * g0 - b * g1) / det, (a * g1 - b * g0) / det])


def fit_voxels(signals: np.ndarray, te_ms: np.ndarray, options: MeseFitOptions, sigma: float | None) -> MeseFit:
    """Fit T2 for every voxel (columns of ``signals``), with the options' echo selection and noise handling."""
    s = np.asarray(signals, dtype=np.float64)
    te = np.asarray(te_ms, dtype=np.float64)
    first = 1 if options.exclude_first_echo else 0
    s, te = s[first:], te[first:]
    use = np.ones(s.shape, dtype=bool)
    if options.noise == "exclude" and sigma:
        # First-moment Rician correction (Gudbjartsson & Patz 1995): E[M]^2 ~ A^2 + sigma^2 at moderate SNR.
        s = np.sqrt(np.maximum(s * s - sigma * sigma, 0.0))
    s0, t2 = _estimate(s, te, use, options, offset=options.noise == "offset")
    if options.noise == "exclude" and sigma:
        predicted = s0[None, :] * np.exp(-te[:, None] / t2[None, :])
        use = np.nan_to_num(predicted) >= options.noise_threshold * sigma
        s0, t2 = _estimate(s, te, use, options, offset=False)
    n_used = use.sum(0)
    floor = (options.min_signal_sigma * sigma) if sigma else 0.0
    valid = (n_used >= options.min_echoes) & np.isfinite(t2) & (s[0] > floor)
    return MeseFit(np.where(valid, t2, np.nan), np.where(valid, s0, np.nan), n_used.astype(np.int16))


def _estimate(s, te, use, options: MeseFitOptions, *, offset: bool) -> tuple[np.ndarray, np.ndarray]:
    s0, t2 = loglinear_fit(s, te, use)
    s0, t2 = loglinear_fit(s, te, use, expected=s0[None, :] * np.exp(-te[:, None] / t2[None, :]))
    if options.estimator == NLLS:
        s0, t2, _ = nlls_fit(s, te, use, s0, t2, offset=offset, iterations=options.iterations)
    return s0, t2


def mese_t2_ms(series: MeseSeries, options: MeseFitOptions = MeseFitOptions()) -> tuple[np.ndarray, dict]:
    """Raw T2 (ms, float32, NaN where no estimate) on the echo grid, and a record of how it was fitted."""
    stack = [np.asarray(e.array) for e in series.echoes]
    shape = stack[0].shape
    sigma = options.noise_sigma
    measured = sigma is None
    if sigma is None and options.noise != "none":
        sigma = estimate_noise_sigma(stack[0])
    te = np.asarray(series.echo_times_ms, dtype=np.float64)
    first = 1 if options.exclude_first_echo else 0
    # Air is never fitted: only voxels whose first fitted echo rises above the signal floor.
    floor = options.min_signal_sigma * sigma if sigma else 0.0
    index = np.flatnonzero(stack[first].reshape(-1) > floor)
    out = np.full(stack[0].size, np.nan, dtype=np.float32)
    for start in range(0, index.size, CHUNK_VOXELS):
        chunk = index[start : start + CHUNK_VOXELS]
        fit = fit_voxels(np.stack([a.reshape(-1)[chunk] for a in stack]), te, options, sigma)
        out[chunk] = fit.t2_ms
    record = {
        "model": "S0 exp(-TE/T2)" + (" + C" if options.noise == "offset" else ""),
        "estimator": options.estimator,
        "first_echo_excluded": options.exclude_first_echo,
        "echo_times_fitted_ms": [float(t) for t in te[first:]],
        "noise_handling": options.noise,
        "noise_sigma": None if sigma is None else round(float(sigma), 3),
        "noise_sigma_source": "given" if not measured else ("air background" if sigma else "not found"),
        "n_voxels_fitted": int(index.size),
    }
    return out.reshape(shape), record
