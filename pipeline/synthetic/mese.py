"""A synthetic multi-echo spin-echo (MESE) T2 DICOM series of the phantom knee, laid out as scanners write it.

As the OAI's sagittal T2 map series: 2-D slices with a gap (3 mm thick, 3.5 mm apart), an oblique orientation, one
file per echo and slice in one series, files named in acquisition order so that the echoes interleave by file
name (GE), 8 echoes (TE 10-80 ms), TR 2700 ms, flip 90 deg. Signal S = PD exp(-TE/T2) per tissue with a known T2
per cartilage region, Rician noise at SNR 40 (cartilage PD over the noise SD), air outside the knee (pure noise,
as in a real field of view). Echo 1 is scaled by ``first_echo_factor`` as a stand-in for stimulated-echo
contamination, so excluding it matters.

This is the mono-exponential model that ``pipeline.t2.mese`` fits: the series checks the fitting, the echo
handling and the plumbing end to end, not the physics of real spin-echo trains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dicom_series import write_mr_series
from .phantom import ORIENTATIONS, Phantom, PhantomSpec, make_phantom
from .qdess import SeriesExample, truth_t2_map

TR_MS = 2700.0
ECHO_TIMES_MS = tuple(10.0 * n for n in range(1, 9))
SLICE_THICKNESS_MM, SLICE_SPACING_MM = 3.0, 3.5
#: Spin-echo T2 (ms) per cartilage region id (higher than steady-state qDESS values, as measured in vivo).
REGION_T2_MS = {11: 40.0, 12: 42.0, 13: 44.0, 14: 46.0, 15: 48.0, 5: 36.0, 6: 38.0, 7: 45.0}
#: T2 (ms) and proton density (cartilage = 1) per canonical label elsewhere; 0 = soft tissue inside the leg.
TISSUE_T2_MS = {0: 45.0, 1: 60.0, 2: 60.0, 3: 60.0, 8: 12.0, 9: 12.0}
TISSUE_PD = {0: 0.45, 1: 0.7, 2: 0.7, 3: 0.7, 4: 1.0, 5: 1.0, 6: 1.0, 7: 1.0, 8: 0.3, 9: 0.3}
CARTILAGE_SIGNAL = 2000.0  # pixel value of cartilage PD
AIR_MARGIN_MM = 8.0  # background further than this from every structure is air (no signal)


@dataclass(frozen=True)
class MeseExample(SeriesExample):
    """Where the series was written, its truth, and the noise SD of every echo (pixel units)."""

    noise_sigma: float = 0.0


def oblique_direction(degrees: float = 12.0) -> np.ndarray:
    """The sagittal orientation turned ``degrees`` about the patient's S axis and half that about its P axis."""
    a, b = np.radians(degrees), np.radians(degrees / 2)
    about_s = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    about_p = np.array([[np.cos(b), 0.0, np.sin(b)], [0.0, 1.0, 0.0], [-np.sin(b), 0.0, np.cos(b)]])
    return about_p @ about_s @ ORIENTATIONS["sagittal"]


def mese_spec(*, in_plane_mm: float = 0.5, side: str = "right", oblique_deg: float = 12.0) -> PhantomSpec:
    """The phantom on a 2-D multi-slice grid: ``in_plane_mm`` pixels, slices 3.5 mm apart, oblique."""
    return PhantomSpec(
        side=side,
        femoral_mm=3.0,
        tibial_mm=3.0,
        patellar_mm=3.5,
        spacing=(in_plane_mm, in_plane_mm, SLICE_SPACING_MM),
        direction=oblique_direction(oblique_deg),
    )


def mese_echoes(
    phantom: Phantom,
    t2_ms: np.ndarray,
    *,
    snr: float = 40.0,
    seed: int = 0,
    first_echo_factor: float = 0.9,
    echo_times_ms: tuple[float, ...] = ECHO_TIMES_MS,
) -> tuple[list[np.ndarray], float]:
    """Echo magnitudes (float64) with Rician noise, and the noise SD per echo."""
    from scipy import ndimage

    labels = phantom.labels.array
    pd = np.zeros(256)
    for value, density in TISSUE_PD.items():
        pd[value] = density
    s0 = pd[labels] * CARTILAGE_SIGNAL
    far = ndimage.distance_transform_edt(labels == 0, sampling=phantom.labels.spacing[::-1]) > AIR_MARGIN_MM
    s0[far] = 0.0
    sigma = CARTILAGE_SIGNAL / snr
    rng = np.random.default_rng(seed)
    echoes = []
    for n, te in enumerate(echo_times_ms):
        clean = s0 * np.exp(-te / t2_ms) * (first_echo_factor if n == 0 else 1.0)
        echoes.append(np.hypot(clean + rng.normal(0, sigma, clean.shape), rng.normal(0, sigma, clean.shape)))
    return echoes, sigma


def write_mese_example(
    out: Path,
    *,
    spec: PhantomSpec | None = None,
    snr: float = 40.0,
    seed: int = 0,
    first_echo_factor: float = 0.9,
    patient: dict[str, str] | None = None,
) -> MeseExample:
    """Write ``out/mese/`` (8 echoes, interleaved file names) and ``out/mese_t2_truth.json``."""
    out = Path(out)
    phantom = make_phantom(spec or mese_spec())
    t2_ms, truth = truth_t2_map(phantom, region_t2_ms=REGION_T2_MS, tissue_t2_ms=TISSUE_T2_MS)
    echoes, sigma = mese_echoes(phantom, t2_ms, snr=snr, seed=seed, first_echo_factor=first_echo_factor)
    series = write_mr_series(
        out / "mese",
        phantom.labels,
        echoes,
        list(ECHO_TIMES_MS),
        tr_ms=TR_MS,
        flip_deg=90.0,
        description="Sag T2 map MESE (synthetic)",
        scanning_sequence="SE",
        sequence_variant="SK",
        file_names="interleaved",
        slice_thickness_mm=SLICE_THICKNESS_MM,
        acquisition_type="2D",
        patient=patient,
        series_number=9,
    )
    truth_path = out / "mese_t2_truth.json"
    truth_path.write_text(
        json.dumps(
            {
                "units": "ms",
                "regions": truth,
                "note": "True mean T2 per region of the synthetic MESE series (voxel-weighted, true cartilage).",
                "acquisition": {"tr_ms": TR_MS, "echo_times_ms": list(ECHO_TIMES_MS), "snr": snr},
            },
            indent=2,
        )
    )
    return MeseExample(series, truth_path, truth, phantom, sigma)
