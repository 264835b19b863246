"""Synthetic qDESS (and not-qDESS) DICOM series with known T2, for the T2 tests.

The signal model is written out here independently of ``pipeline.t2`` (Sveinsson et al. 2017, as in the
predecessor): echo 1 is a tissue's proton-density-like signal, echo 2 = echo 1 * k * exp(-2 (TR - TE) / T2 - c1),
with k and c1 from the spoiled (GE GL area / Tg tags) or the low-spoiling model. Series are written one file per
slice per echo with pydicom, in a realistic sagittal geometry (rows -> posterior, columns -> inferior, slices ->
patient right, as scanners write sagittal knees), GE manufacturer, TR 20 ms, TE 5.8 ms, flip 20 deg, and
optionally the GE private spoiler tags and Rician noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import labels as L
from pipeline.config import AnalysisConfig
from pipeline.morphometry import anatomy
from pipeline.synthetic import PhantomSpec, make_phantom
from pipeline.volume import Volume

#: Spoiler values measured on a real GE qDESS knee scan (as used in OpenMSK's tests); with them (and TR 20 ms,
#: TE 5.8 ms, flip 20 deg) the low-spoiling estimate reads 1.2 % low at 15 ms and 5.5 % low at 70 ms, as the
#: reference documents (1.4 % at 10-20 ms, 5.4 % at 60-80 ms).
GE_GL_AREA = 3131.662354
GE_TG_US = 2472.0

#: Coarse grid (i, j, k spacing in mm) giving a 63 x 66 x 25 sagittal phantom: fast, yet every region is present.
COARSE_SPACING = (1.0, 1.4, 3.8)

#: Truth T2 (ms) per region id; femoral subregions differ so that pooling into "femoral" is tested too.
REGION_T2_MS = {11: 30.0, 12: 33.0, 13: 36.0, 14: 39.0, 15: 42.0, 5: 25.0, 6: 28.0, 7: 45.0}
#: T2 (ms) and echo-1 signal (pixel value) of the other tissues, per canonical label.
TISSUE_T2_MS = {0: 250.0, 1: 60.0, 2: 60.0, 3: 60.0, 8: 12.0, 9: 12.0}
TISSUE_S1 = {0: 300.0, 1: 800.0, 2: 800.0, 3: 800.0, 4: 2000.0, 5: 2000.0, 6: 2000.0, 7: 2000.0, 8: 250.0, 9: 250.0}
CARTILAGE_S1 = 2000.0


@dataclass(frozen=True)
class Acquisition:
    """Header values of a synthetic series. Times in ms, flip angle in degrees; spoiler values as GE stores them."""

    tr_ms: float = 20.0
    te_ms: float = 5.8
    flip_deg: float = 20.0
    gl_area: float | None = GE_GL_AREA
    tg_us: float | None = GE_TG_US
    t1_ms: float = 1200.0  # the tissues' true T1; equal to the estimator's assumption
    diffusivity_m2_s: float = 1.25e-9


@dataclass(frozen=True)
class QDessPhantom:
    """A coarse synthetic knee with its regions and per-voxel truth T2 (ms)."""

    labels: Volume
    region_map: np.ndarray
    t2_ms: np.ndarray

    def truth_mean(self, region_ids: tuple[int, ...], mask: np.ndarray | None = None) -> float:
        member = np.isin(self.region_map, region_ids)
        if mask is not None:
            member &= mask
        return float(self.t2_ms[member].mean())


def make_qdess_phantom(spacing: tuple[float, float, float] = COARSE_SPACING) -> QDessPhantom:
    """The synthetic knee (3 mm cartilage) on a coarse sagittal grid, with region map and truth T2 per voxel."""
    phantom = make_phantom(PhantomSpec(spacing=spacing, femoral_mm=3.0, tibial_mm=3.0, patellar_mm=3.5))
    labels = phantom.labels
    femoral, _ = anatomy.femoral_subregions(labels, anatomy.detect_laterality(labels), AnalysisConfig())
    region_map = anatomy.region_map(labels, femoral)
    t2 = np.zeros(labels.array.shape)
    for value, t2_ms in TISSUE_T2_MS.items():
        t2[labels.array == value] = t2_ms
    for region, t2_ms in REGION_T2_MS.items():
        t2[region_map == region] = t2_ms
    return QDessPhantom(labels, region_map, t2)


def echo1_signal(labels: np.ndarray) -> np.ndarray:
    """Echo-1 magnitude per voxel from the canonical labels (float64)."""
    lut = np.zeros(256)
    for value, s1 in TISSUE_S1.items():
        lut[value] = s1
    return lut[labels]


def model_constants(acq: Acquisition, model: str) -> tuple[float, float]:
    """(k, c1) of Sveinsson's model: "spoiled" (needs GE spoiler values) or "low_spoiling"."""
    tr, t1, alpha = acq.tr_ms / 1000, acq.t1_ms / 1000, math.radians(acq.flip_deg)
    if model == "spoiled":
        tg = acq.tg_us / 1e6
        gradient_g_per_m = acq.gl_area / acq.tg_us * 100
        dk = 2 * math.pi * 4258 * gradient_g_per_m * tg
        e1 = math.exp(-tr / t1 - tr * dk * dk * acq.diffusivity_m2_s)
        c1 = (tr - tg / 3) * dk * dk * acq.diffusivity_m2_s
    elif model == "low_spoiling":
        e1, c1 = math.exp(-tr / t1), 0.0
    else:
        raise ValueError(model)
    k = math.sin(alpha / 2) ** 2 * (1 + e1) / (1 - math.cos(alpha) * e1)
    return k, c1


def qdess_echoes(
    s1: np.ndarray, t2_ms: np.ndarray, acq: Acquisition, *, model: str, snr: float | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Both echo magnitudes; ``snr`` is the cartilage echo-1 signal over the noise SD (Rician noise), None = none."""
    k, c1 = model_constants(acq, model)
    s2 = s1 * k * np.exp(-2 * (acq.tr_ms - acq.te_ms) / t2_ms - c1)
    if snr is None:
        return s1, s2
    rng = np.random.default_rng(seed)
    sigma = CARTILAGE_S1 / snr
    return tuple(np.hypot(s + rng.normal(0, sigma, s.shape), rng.normal(0, sigma, s.shape)) for s in (s1, s2))


def write_qdess_series(
    folder: Path,
    phantom: QDessPhantom,
    acq: Acquisition = Acquisition(),
    *,
    model: str | None = None,
    snr: float | None = None,
    seed: int = 0,
    n_echoes: int = 2,
    private_tags: str = "present",
    description: str = "Sag 3D qDESS",
    echo2_shift_mm: tuple[float, float, float] | None = None,
    echo_tags: bool = True,
) -> Path:
    """Write a qDESS series of ``phantom`` (one file per slice and echo) and return ``folder``.

    Args:
        model: signal model; default "spoiled" when the acquisition has spoiler values, else "low_spoiling".
        n_echoes: 1 writes echo 1 only (an incomplete export).
        private_tags: "present" (GE GL area/TG as DS), "absent" (anonymised), "zero", "garbage" (VR lost, UN), or
            "foreign" (the same values in another vendor's private block).
        echo2_shift_mm: moves echo 2's slice positions (LPS mm): a geometry mismatch between the echoes.
        echo_tags: False drops EchoNumbers and gives both echoes echo 1's EchoTime (echoes not separable).
    """
    model = model or ("spoiled" if acq.gl_area and acq.tg_us else "low_spoiling")
    s1, s2 = qdess_echoes(echo1_signal(phantom.labels.array), phantom.t2_ms, acq, model=model, snr=snr, seed=seed)
    echo_times = [acq.te_ms, 2 * acq.tr_ms - acq.te_ms]  # echo 2 (S-) refocuses TE before the next-but-one pulse
    shifts = {2: echo2_shift_mm} if echo2_shift_mm else {}
    present = (f"{acq.gl_area:.6f}", f"{acq.tg_us:.6f}")
    tags = {"present": present, "foreign": present, "zero": ("0", "0"), "garbage": (b"n/a ", b"n/a "), "absent": None}[
        private_tags
    ]
    creator = "SIEMENS MR HEADER" if private_tags == "foreign" else "GEMS_ACQU_01"
    return write_series(
        folder,
        phantom.labels,
        [s1, s2][:n_echoes],
        echo_times[:n_echoes],
        tr_ms=acq.tr_ms,
        flip_deg=acq.flip_deg,
        description=description,
        spoiler_tags=tags,
        echo_shift_mm=shifts,
        echo_tags=echo_tags,
        private_creator=creator,
    )


def write_mese_series(
    folder: Path, phantom: QDessPhantom, *, n_echoes: int = 4, scanning_sequence: str | None = "SE"
) -> Path:
    """A multi-echo spin-echo T2 series (TE 10, 20, ... ms; TR 2000 ms; flip 90 deg): not qDESS."""
    s0 = echo1_signal(phantom.labels.array)
    tes = [10.0 * (n + 1) for n in range(n_echoes)]
    echoes = [s0 * np.exp(-te / phantom.t2_ms) for te in tes]
    return write_series(
        folder,
        phantom.labels,
        echoes,
        tes,
        tr_ms=2000.0,
        flip_deg=90.0,
        description="Sag T2 map MESE",
        scanning_sequence=scanning_sequence,
        sequence_variant="SK",
        spoiler_tags=None,
    )


def write_series(
    folder: Path, geometry: Volume, echoes: list[np.ndarray], echo_times_ms: list[float], **kwargs
) -> Path:
    """Write echoes as one single-frame MR file per slice and echo (see pipeline.synthetic.dicom_series)."""
    from pipeline.synthetic.dicom_series import write_mr_series

    return write_mr_series(folder, geometry, echoes, echo_times_ms, **kwargs)


def make_slab_phantom(
    *,
    thickness_mm: float,
    spacing: tuple[float, float, float] = (0.4, 0.5, 0.7),
    size: tuple[int, int, int] = (24, 24, 24),
    normal_ijk: tuple[float, float, float] = (0, 0, 1),
    radius_mm: float | None = None,
    deep_t2_ms: float = 30.0,
    superficial_t2_ms: float = 50.0,
) -> QDessPhantom:
    """Tibial cartilage (medial, label 5) as a flat slab of ``thickness_mm`` on a tibia half-space.

    The slab's normal is given in the index axes' physical frame (mm along i, j, k) and may be oblique; the
    slab spans the whole grid unless ``radius_mm`` makes it a disc. Truth T2: ``deep_t2_ms`` where a voxel
    centre lies in the half nearer the bone, ``superficial_t2_ms`` in the outer half. Grid: ``size`` (i, j, k)
    voxels of ``spacing`` mm in the sagittal orientation. ``labels.meta`` holds ``truth_deep`` (the deep half)
    and ``in_plane_mm`` (each voxel's distance from the slab's axis).
    """
    from pipeline.synthetic import ORIENTATIONS

    ni, nj, nk = size
    normal = np.asarray(normal_ijk, dtype=float) / np.linalg.norm(normal_ijk)
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in (nk, nj, ni)), indexing="ij")
    centre = (np.array(size) - 1) / 2 * np.asarray(spacing)
    p = np.stack([ii * spacing[0], jj * spacing[1], kk * spacing[2]], axis=-1) - centre
    height = p @ normal + thickness_mm / 2  # 0 at the bone surface, thickness at the articular surface
    labels = np.where(height < 0, L.CANONICAL[L.TIBIA], 0).astype(np.uint8)
    in_plane = np.linalg.norm(p - (p @ normal)[..., None] * normal, axis=-1)
    slab = (height >= 0) & (height < thickness_mm)
    if radius_mm is not None:
        slab &= in_plane <= radius_mm
    labels[slab] = L.CANONICAL[L.MEDIAL_TIBIAL_CARTILAGE]
    deep = slab & (height < thickness_mm / 2)
    t2 = np.full(labels.shape, TISSUE_T2_MS[0])
    t2[labels == L.CANONICAL[L.TIBIA]] = TISSUE_T2_MS[2]
    t2[slab] = superficial_t2_ms
    t2[deep] = deep_t2_ms
    region_map = np.where(slab, L.REGION_IDS["medial_tibial"], 0).astype(np.uint8)
    meta = {"truth_deep": deep, "in_plane_mm": in_plane}
    volume = Volume(labels, spacing, (10.0, -40.0, 30.0), ORIENTATIONS["sagittal"], meta=meta)
    return QDessPhantom(volume, region_map, t2)
