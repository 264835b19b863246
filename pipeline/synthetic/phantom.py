"""Synthetic knees with exactly known cartilage thickness, and MR-like images rendered from them.

The phantom is defined by implicit shapes in a knee frame (mm; x medial for the right knee, y posterior,
z superior, origin on the tibial plateau) and voxelised on any grid, so the same anatomy can be sampled
with any spacing, orientation or laterality:

- femoral condyles: two spheres of radius 18 mm; femoral cartilage is a spherical shell of exactly
  ``femoral_mm`` around them, cut along radial directions (so every bone normal either crosses the full
  shell or misses it);
- trochlea: the condyles joined in front (anterior-inferior) by a cylinder of the same radius around the line
  through their centres, with a cylindrical shell of exactly ``femoral_mm``, so the femoral cartilage is one piece
  as in a real knee (see ``_trochlea``);
- tibial cartilage: flat slabs of exactly ``tibial_mm`` on a flat plateau (``medial_tibial_mm`` and
  ``lateral_tibial_mm``, when given, set each compartment on its own);
- patellar cartilage: a flat slab of exactly ``patellar_mm`` on the patella's flat posterior face;
- menisci: C-shaped wedges around each plateau.

Used by tests (known answers), the example case, and (rendered by ``render``) for the demo model's training images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import labels as L
from ..volume import Volume

CONDYLE_RADIUS = 18.0
CONDYLE_X = 20.0
SHAFT_RADIUS = 12.0
JOINT_GAP = 1.0
#: Trochlea: elevation (degrees about the condyles' axis; 0 = anterior, negative = inferior) of the cylinder joining
#: the condyles and of its cartilage. It stays below the patellar cartilage and above the menisci.
TROCHLEA_DEG = (-40.0, 0.0)
#: Condyle cartilage between the condyles within this many degrees of the trochlea is left out, so no bone normal
#: starting within 2 mm of the trochlea's cut faces meets a shell of partial thickness.
TROCHLEA_MARGIN_DEG = 15.0

#: Index-axis directions (columns, LPS) of common acquisitions.
ORIENTATIONS: dict[str, np.ndarray] = {
    # sagittal DESS as scanners write it: i -> posterior, j -> inferior, k -> right ("PIR")
    "sagittal": np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
    "axial": np.eye(3),  # LPS
    "coronal": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),  # L, I, P ("LIP")
}


@dataclass(frozen=True)
class PhantomSpec:
    """What to generate. Thicknesses in mm; spacing in the grid's (i, j, k) order."""

    side: str = "right"
    femoral_mm: float = 2.0
    tibial_mm: float = 2.0
    patellar_mm: float = 2.5
    medial_tibial_mm: float | None = None  # None: tibial_mm (per compartment for two-visit pairs)
    lateral_tibial_mm: float | None = None
    spacing: tuple[float, float, float] = (0.36, 0.36, 0.7)
    orientation: str = "sagittal"
    direction: np.ndarray | None = field(default=None, compare=False)
    centre_lps: tuple[float, float, float] = (12.0, -25.0, 40.0)

    def __post_init__(self) -> None:
        if self.side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {self.side!r}")

    @property
    def compartment_tibial_mm(self) -> dict[str, float]:
        """Tibial cartilage thickness (mm) of the medial and the lateral compartment."""
        medial = self.tibial_mm if self.medial_tibial_mm is None else self.medial_tibial_mm
        lateral = self.tibial_mm if self.lateral_tibial_mm is None else self.lateral_tibial_mm
        return {"medial": medial, "lateral": lateral}


@dataclass(frozen=True)
class Phantom:
    """A generated knee: its canonical label map and the truth it was built from."""

    labels: Volume
    spec: PhantomSpec

    @property
    def truth_thickness_mm(self) -> dict[str, float]:
        s = self.spec
        tibial = s.compartment_tibial_mm
        return {
            "femoral": s.femoral_mm,
            "medial_tibial": tibial["medial"],
            "lateral_tibial": tibial["lateral"],
            "patellar": s.patellar_mm,
        }


def _geometry(spec: PhantomSpec) -> dict[str, float]:
    zc = max(spec.compartment_tibial_mm.values()) + JOINT_GAP + spec.femoral_mm + CONDYLE_RADIUS
    return {
        "zc": zc,
        "patella_z": zc + 14.0,
        "patella_face_y": -(SHAFT_RADIUS + 5.0 + spec.patellar_mm),
    }


def _label_knee_frame(q: np.ndarray, spec: PhantomSpec) -> np.ndarray:
    """Canonical labels for (N, 3) knee-frame points of a right knee."""
    x, y, z = q[:, 0], q[:, 1], q[:, 2]
    g = _geometry(spec)
    zc, R = g["zc"], CONDYLE_RADIUS
    out = np.zeros(len(q), dtype=np.uint8)

    def put(mask: np.ndarray, structure: str) -> None:
        out[mask & (out == 0)] = L.CANONICAL[structure]

    # Bones first; cartilage only fills background.
    shaft = (z >= zc) & (x**2 + y**2 <= SHAFT_RADIUS**2)
    condyle_cart = np.zeros(len(q), dtype=bool)
    femur = shaft.copy()
    for cx in (CONDYLE_X, -CONDYLE_X):
        dx, dy, dz = x - cx, y, z - zc
        r = np.sqrt(dx**2 + dy**2 + dz**2)
        femur |= r <= R
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.stack([dx, dy, dz]) / np.maximum(r, 1e-9)
        toward_midline = -np.sign(cx) * d[0]
        covered = ((d[2] <= 0.2) | ((d[1] <= -0.6) & (d[2] <= 0.8))) & (toward_midline <= 0.6)
        condyle_cart |= (r > R) & (r <= R + spec.femoral_mm) & covered
    trochlea_bone, trochlea_cart, near_trochlea = _trochlea(x, y, z - zc, spec.femoral_mm)
    femur |= trochlea_bone
    condyle_cart = (condyle_cart & ~near_trochlea) | trochlea_cart
    put(femur, L.FEMUR)

    # Tibial compartments: each plateau tilted about its own centre (7 deg posterior slope, 3 deg varus), so
    # the cartilage slabs are not aligned with the voxel grid (aligned slabs would all voxelise alike).
    tibia = (z < -12) & (x**2 + y**2 <= 15**2)
    heights = {}
    for cx in (CONDYLE_X, -CONDYLE_X):
        normal = _unit([np.sign(cx) * np.tan(np.radians(3.0)), np.tan(np.radians(7.0)), 1.0])
        h = (x - cx) * normal[0] + y * normal[1] + z * normal[2]  # height above this plateau, along its normal
        u = np.stack([x - cx, y, z]) - h * normal[:, None]  # foot point in the plateau (cut walls along the normal)
        heights[cx] = (h, u)
        half = (x >= 0) if cx > 0 else (x < 0)
        tibia |= half & (h <= 0) & (z >= -12) & ((x / 40) ** 2 + (y / 26) ** 2 <= 1)
    put(tibia, L.TIBIA)

    pz, py = g["patella_z"], g["patella_face_y"]
    # Patella in its own frame, tilted 10 deg about the vertical and 6 deg about the medial-lateral axis.
    px, pyy, pzz = _rotate(np.stack([x, y - py, z - pz]), z_deg=10.0, x_deg=6.0)
    patella = (pyy <= 0) & ((px / 20) ** 2 + (pyy / 10) ** 2 + (pzz / 17) ** 2 <= 1)
    put(patella, L.PATELLA)

    put(condyle_cart, L.FEMORAL_CARTILAGE)
    tibial_mm = spec.compartment_tibial_mm
    for cx, structure, side in (
        (CONDYLE_X, L.MEDIAL_TIBIAL_CARTILAGE, "medial"),
        (-CONDYLE_X, L.LATERAL_TIBIAL_CARTILAGE, "lateral"),
    ):
        h, u = heights[cx]
        put((h > 0) & (h <= tibial_mm[side]) & ((u[0] / 11) ** 2 + (u[1] / 15) ** 2 <= 1), structure)
    put((pyy > 0) & (pyy <= spec.patellar_mm) & ((px / 13) ** 2 + (pzz / 12) ** 2 <= 1), L.PATELLAR_CARTILAGE)

    for cx, structure in ((CONDYLE_X, L.MEDIAL_MENISCUS), (-CONDYLE_X, L.LATERAL_MENISCUS)):
        h, u = heights[cx]
        rho = np.sqrt((u[0] / 11) ** 2 + (u[1] / 15) ** 2)
        height = 1.5 + 5.0 * (rho - 1.08) / 0.42
        opening = (-np.sign(cx) * u[0] > 0) & (np.abs(u[1]) < 6)  # C shape, open toward the notch
        put((rho >= 1.08) & (rho <= 1.5) & (h > 0) & (h <= height) & ~opening, structure)
    return out


def _trochlea(x: np.ndarray, y: np.ndarray, dz: np.ndarray, thickness: float):
    """Bone and cartilage of the trochlea between the condyles, and where condyle cartilage must give way to it.

    Around the line through the condyle centres (``dz`` is the height above it) the union of the two spheres and
    this cylinder sector is a capsule, convex where the cartilage lies: the shell's thickness along every bone
    normal is exactly ``thickness``, and it meets the condyles' shells in the planes x = +-CONDYLE_X.
    """
    between = np.abs(x) < CONDYLE_X
    rho = np.hypot(y, dz)
    elevation = np.degrees(np.arctan2(dz, -y))
    low, high = TROCHLEA_DEG
    sector = between & (elevation >= low) & (elevation <= high)
    bone = sector & (rho <= CONDYLE_RADIUS)
    cartilage = sector & (rho > CONDYLE_RADIUS) & (rho <= CONDYLE_RADIUS + thickness)
    near = between & (elevation >= low - TROCHLEA_MARGIN_DEG) & (elevation <= high + TROCHLEA_MARGIN_DEG)
    return bone, cartilage, near


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def _rotate(p: np.ndarray, *, z_deg: float, x_deg: float) -> np.ndarray:
    """Rotate (3, N) points about z then x (degrees)."""
    cz, sz = np.cos(np.radians(z_deg)), np.sin(np.radians(z_deg))
    cx, sx = np.cos(np.radians(x_deg)), np.sin(np.radians(x_deg))
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rx @ rz @ p


def make_grid(spec: PhantomSpec) -> Volume:
    """An empty grid covering the phantom's field of view with the spec's spacing and orientation."""
    direction = spec.direction if spec.direction is not None else ORIENTATIONS[spec.orientation]
    direction = np.asarray(direction, dtype=float)
    lo = np.array([-44.0, -31.0, -28.0])
    hi = np.array([44.0, 31.0, _geometry(spec)["zc"] + 38.0])
    extent_lps = hi - lo
    extent_idx = np.abs(direction.T) @ extent_lps
    size = np.ceil(extent_idx / np.asarray(spec.spacing)).astype(int) + 1
    centre = np.asarray(spec.centre_lps) + (lo + hi) / 2
    origin = centre - direction @ (np.asarray(spec.spacing) * (size - 1) / 2)
    return Volume(np.zeros(size[::-1], dtype=np.uint8), spec.spacing, origin, direction, meta={"synthetic": True})


def make_phantom(
    spec: PhantomSpec | None = None, *, grid: Volume | None = None, motion: np.ndarray | None = None, **kwargs
) -> Phantom:
    """Voxelise the phantom knee on the spec's grid (keyword arguments build a PhantomSpec).

    Args:
        grid: voxelise on this grid instead (its array is ignored).
        motion: 4x4 rigid transform (LPS mm) moving the knee from where the spec puts it (a follow-up visit).
    """
    spec = spec or PhantomSpec(**kwargs)
    grid = grid if grid is not None else make_grid(spec)
    to_unmoved = np.eye(4) if motion is None else np.linalg.inv(motion)
    nk, nj, ni = grid.array.shape
    out = np.empty(grid.array.shape, dtype=np.uint8)
    jj, ii = np.meshgrid(np.arange(nj), np.arange(ni), indexing="ij")
    ij = np.stack([ii.ravel(), jj.ravel()], axis=1).astype(float)
    mirror = -1.0 if spec.side == "left" else 1.0
    centre = np.asarray(spec.centre_lps)
    for k in range(nk):  # one slice at a time keeps memory small
        ijk = np.column_stack([ij, np.full(len(ij), k, dtype=float)])
        points = grid.index_to_physical(ijk)
        if motion is not None:  # where this voxel's point was before the knee moved
            points = points @ to_unmoved[:3, :3].T + to_unmoved[:3, 3]
        q = points - centre
        q[:, 0] *= mirror
        out[k] = _label_knee_frame(q, spec).reshape(nj, ni)
    meta = {"synthetic": True, "side": spec.side, "scheme": "canonical", "name": f"synthetic_{spec.side}_knee"}
    return Phantom(labels=grid.with_array(out, **meta), spec=spec)
