"""Synthetic knees rendered the way real scans fail, each with its true label map: known truth for segmentation QC.

``degraded_knee(kind, severity, seed=...)`` builds one case. The base knee is drawn like the demo model's training
knees (side, cartilage thickness, orientation, acquisition spacing; ``base_spec``), then:

=============  =====================================================================  ========================
kind           what                                                                   severity
=============  =====================================================================  ========================
clean          ``render_mr`` with the training range of noise and bias                (unused)
noise          Rician-like noise                                                      sd / cartilage signal
bias           smooth multiplicative field exp(s * f), f in [-1, 1]                    s (log amplitude)
blur           Gaussian blur                                                          sigma (mm)
anisotropic    thick slices: blocks of slices averaged onto a coarser grid            slice thickness (mm)
ghosting       motion ghosts: a periodic phase error on the phase-encode lines        phase amplitude (rad)
partial_fov    the field of view cut along superior-inferior                          fraction of it removed
contrast       tissue signals moved toward another sequence's (T1 or PD fat-sat)       0 (DESS) .. 1 (other)
inversion      the image inverted (max - image)                                       (unused)
rotation       the grid rotated against the knee (training saw up to 8 degrees)        degrees
non_knee       not a knee: noise, smooth blobs, a ball in a socket, a layered ellipsoid  which object (0-3)
=============  =====================================================================  ========================

The truth is the phantom voxelised on the degraded image's own grid (cropped, coarser or rotated as the image),
never resampled labels. Synthetic: for the benchmark (bench/seg_qc.py) and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .. import labels as L
from ..volume import Volume
from .phantom import ORIENTATIONS, PhantomSpec, make_grid, make_phantom
from .render import TISSUE_SIGNAL, render_mr

KINDS = (
    "clean",
    "noise",
    "bias",
    "blur",
    "anisotropic",
    "ghosting",
    "partial_fov",
    "contrast",
    "inversion",
    "rotation",
    "non_knee",
)
#: Acquisition spacings of the demo model's training knees (scripts/train_demo_model.py).
TRAINING_SPACINGS = ((0.36, 0.36, 0.7), (0.5, 0.5, 1.0), (0.45, 0.45, 0.8), (0.6, 0.6, 0.6))
NON_KNEE_OBJECTS = ("noise", "smooth blobs", "ball in a socket", "layered ellipsoid")

#: Tissue signals of other sequences (arbitrary units, same scale as ``render.TISSUE_SIGNAL``): T1-weighted (fatty
#: marrow bright, fluid and cartilage darker) and proton-density fat-saturated (marrow dark, fluid bright).
OTHER_SEQUENCES: dict[str, dict[int, float]] = {
    "T1": {
        0: 110.0,
        **{L.CANONICAL[b]: 430.0 for b in L.BONES},
        **{L.CANONICAL[c]: 190.0 for c in L.CARTILAGES},
        **{L.CANONICAL[m]: 30.0 for m in L.MENISCI},
    },
    "PD fat-sat": {
        0: 330.0,
        **{L.CANONICAL[b]: 70.0 for b in L.BONES},
        **{L.CANONICAL[c]: 240.0 for c in L.CARTILAGES},
        **{L.CANONICAL[m]: 20.0 for m in L.MENISCI},
    },
}


@dataclass(frozen=True)
class DegradedKnee:
    """One case: the image, its true canonical labels on the same grid (None: no knee in it), what was done."""

    kind: str
    severity: float
    seed: int
    image: Volume
    truth: Volume | None
    note: str

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.severity:g}-s{self.seed}"


def base_spec(seed: int) -> PhantomSpec:
    """A knee drawn like the demo model's training knees (side, thickness, orientation, spacing)."""
    rng = np.random.default_rng(seed)
    orientation = str(rng.choice(list(ORIENTATIONS)))
    return PhantomSpec(
        side=str(rng.choice(["right", "left"])),
        femoral_mm=float(rng.uniform(1.7, 2.8)),
        tibial_mm=float(rng.uniform(1.7, 2.8)),
        patellar_mm=float(rng.uniform(1.8, 3.0)),
        spacing=TRAINING_SPACINGS[int(rng.integers(len(TRAINING_SPACINGS)))],
        orientation=orientation,
        centre_lps=(float(rng.uniform(-20, 20)), float(rng.uniform(-20, 20)), float(rng.uniform(-20, 20))),
    )


def degraded_knee(kind: str, severity: float = 0.0, *, seed: int = 0, spec: PhantomSpec | None = None) -> DegradedKnee:
    """One synthetic case of ``kind`` (see the module docstring) at ``severity``, reproducible from ``seed``."""
    if kind not in KINDS:
        raise ValueError(f"unknown degradation {kind!r}; choose one of {', '.join(KINDS)}")
    spec = spec or base_spec(seed)
    rng = np.random.default_rng(seed + 7919)
    if kind == "non_knee":
        image = non_knee_image(make_grid(spec), int(severity), seed=seed)
        return DegradedKnee(kind, severity, seed, image, None, f"not a knee: {NON_KNEE_OBJECTS[int(severity)]}")
    if kind == "rotation":
        spec = replace(spec, direction=_rotated(ORIENTATIONS[spec.orientation], severity, rng))
    if kind == "anisotropic":
        return _anisotropic(spec, severity, seed, rng)
    truth = make_phantom(spec).labels
    noise, bias = float(rng.uniform(0.02, 0.07)), float(rng.uniform(0.05, 0.35))
    if kind == "noise":
        noise = severity
    signal = None
    if kind == "contrast":
        target = OTHER_SEQUENCES[str(rng.choice(list(OTHER_SEQUENCES)))]
        signal = {v: (1 - severity) * TISSUE_SIGNAL[v] + severity * target[v] for v in TISSUE_SIGNAL}
    image = render_mr(truth, seed=seed, noise=noise, bias=bias, tissue_signal=signal)
    array = image.array
    if kind == "bias":
        array = array * np.exp(severity * _smooth_field(array.shape, rng)).astype(np.float32)
    elif kind == "blur":
        from scipy import ndimage

        array = ndimage.gaussian_filter(array, [severity / s for s in image.spacing[::-1]])
    elif kind == "ghosting":
        array = _ghosted(array, severity, rng)
    elif kind == "inversion":
        array = float(array.max()) - array
    image = image.with_array(np.asarray(array, dtype=np.float32))
    if kind == "partial_fov":
        image, truth = _cropped(image, truth, severity, rng)
    return DegradedKnee(kind, severity, seed, image, truth, _note(kind, severity))


def _note(kind: str, severity: float) -> str:
    units = {
        "noise": "noise sd {:g} x cartilage signal",
        "bias": "bias field exp({:g} f)",
        "blur": "Gaussian blur sigma {:g} mm",
        "ghosting": "ghosting, phase amplitude {:g} rad",
        "partial_fov": "{:.0%} of the field of view cut",
        "contrast": "contrast {:.0%} of the way to another sequence",
        "rotation": "grid rotated {:g} degrees against the knee",
    }
    return units[kind].format(severity) if kind in units else kind


def _rotated(direction: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return (np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k) @ direction


def _smooth_field(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A smooth random field in [-1, 1]: a few low-frequency waves with random phases and directions."""
    coords = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij", sparse=True)
    field = np.zeros(shape, dtype=np.float32)
    for _ in range(3):
        k = rng.normal(size=3) * 1.5
        field = field + np.sin(sum(ki * c for ki, c in zip(k, coords, strict=True)) + rng.uniform(0, 2 * np.pi))
    return field / max(float(np.abs(field).max()), 1e-6)


def _ghosted(array: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Periodic motion (breathing-like) as a phase error on every phase-encode line: ghosts along that axis."""
    axis = int(rng.integers(3))
    n = array.shape[axis]
    period = float(rng.uniform(4, 10))  # lines per motion cycle
    phase = amplitude * np.sin(2 * np.pi * np.arange(n) / period + rng.uniform(0, 2 * np.pi))
    shape = [1, 1, 1]
    shape[axis] = n
    spectrum = np.fft.fft(array, axis=axis) * np.exp(1j * phase).reshape(shape)
    return np.abs(np.fft.ifft(spectrum, axis=axis)).astype(np.float32)


def _cropped(image: Volume, truth: Volume, fraction: float, rng: np.random.Generator) -> tuple[Volume, Volume]:
    """Cut ``fraction`` of the field of view along the axis closest to superior-inferior, from the top or bottom."""
    axis_ijk = int(np.argmax(np.abs(image.direction[2, :])))
    axis = 2 - axis_ijk
    n = image.array.shape[axis]
    keep = max(8, round(n * (1 - fraction)))
    start = 0 if rng.random() < 0.5 else n - keep
    box = [slice(None)] * 3
    box[axis] = slice(start, start + keep)
    index = np.zeros(3)
    index[axis_ijk] = start
    origin = image.index_to_physical(index[None])[0]

    def crop(volume: Volume) -> Volume:
        return Volume(np.ascontiguousarray(volume.array[tuple(box)]), volume.spacing, origin, volume.direction,
                      meta=dict(volume.meta))  # fmt: skip

    return crop(image), crop(truth)


def _anisotropic(spec: PhantomSpec, thickness_mm: float, seed: int, rng: np.random.Generator) -> DegradedKnee:
    """Thick slices: the fine image's slices averaged in blocks (the slice profile) onto a coarser grid."""
    fine_labels = make_phantom(spec).labels
    fine = render_mr(fine_labels, seed=seed, noise=float(rng.uniform(0.02, 0.05)), bias=float(rng.uniform(0.05, 0.3)))
    k_spacing = fine.spacing[2]
    factor = max(1, round(thickness_mm / k_spacing))
    nk = fine.array.shape[0] // factor
    blocks = fine.array[: nk * factor].reshape(nk, factor, *fine.array.shape[1:]).mean(axis=1)
    spacing = (fine.spacing[0], fine.spacing[1], k_spacing * factor)
    x, y, z = np.asarray(fine.origin) + fine.direction[:, 2] * k_spacing * (factor - 1) / 2
    grid = Volume(np.zeros(blocks.shape, dtype=np.uint8), spacing, (x, y, z), fine.direction, meta={"synthetic": True})
    truth = make_phantom(spec, grid=grid).labels
    image = grid.with_array(blocks.astype(np.float32), synthetic=True, rendered_from="labels")
    return DegradedKnee("anisotropic", thickness_mm, seed, image, truth, f"{spacing[2]:.1f} mm slices")


def non_knee_image(grid: Volume, which: int, *, seed: int = 0) -> Volume:
    """An MR-like image of something that is not a knee, on ``grid`` (see ``NON_KNEE_OBJECTS``)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    shape = grid.array.shape
    centre = grid.index_to_physical(((np.array(grid.size) - 1) / 2)[None])[0]
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    points = grid.index_to_physical(np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)) - centre
    r = np.linalg.norm(points, axis=1).reshape(shape)
    if which == 0:
        array = np.full(shape, 60.0, dtype=np.float32)
    elif which == 1:
        blobs = ndimage.gaussian_filter(
            rng.normal(0, 1, shape).astype(np.float32), [4.0 / s for s in grid.spacing[::-1]]
        )
        array = 200 + 150 * blobs / max(float(blobs.std()), 1e-6)
    elif which == 2:
        z = points[:, 2].reshape(shape)
        ball = r <= 22
        socket = (r > 24) & (r <= 30) & (z < 5)
        array = np.where(ball, 180.0, np.where(socket, 170.0, np.where(r <= 24, 420.0, 60.0)))
    elif which == 3:
        scaled = np.linalg.norm(points / np.array([40.0, 30.0, 30.0]), axis=1).reshape(shape)
        array = np.select([scaled <= 0.6, scaled <= 0.85, scaled <= 1.0], [300.0, 200.0, 420.0], 60.0)
    else:
        raise ValueError(f"non-knee object {which} unknown; 0-{len(NON_KNEE_OBJECTS) - 1}")
    array = ndimage.gaussian_filter(np.asarray(array, dtype=np.float32), [0.4 / s for s in grid.spacing[::-1]])
    sd = 0.04 * 420.0
    real = array + rng.normal(0, sd, shape).astype(np.float32)
    magnitude = np.sqrt(real**2 + rng.normal(0, sd, shape).astype(np.float32) ** 2)
    return grid.with_array(magnitude.astype(np.float32), synthetic=True, rendered_from="non-knee object")
