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


#: Menisci: C-shaped wedges between these normalised radii of a plateau's ellipse, rising from the inner edge.
MENISCUS_RHO = (1.08, 1.5)
#: Margin (mm) of the boxes that hold each group of structures (see ``_label_knee_frame``).
BOX_MARGIN_MM = 1.0


def _meniscus_height(rho: np.ndarray | float) -> np.ndarray | float:
    """Height (mm) of a meniscus above its plateau at normalised radius ``rho``."""
    return 1.5 + 5.0 * (rho - MENISCUS_RHO[0]) / 0.42


def _label_knee_frame(q: np.ndarray, spec: PhantomSpec, *, boxed: bool = True) -> np.ndarray:
    """Canonical labels for (N, 3) knee-frame points of a right knee.

    Each group of structures (femur, tibia, patella) is evaluated only on the points inside a box that surely holds
    it, with a margin: the same arithmetic on each point as over all of them, so the same labels, about twice as
    fast. ``boxed=False`` evaluates every group on every point (the reference the tests compare with).
    """
    x, y, z = q[:, 0], q[:, 1], q[:, 2]
    out = np.zeros(len(q), dtype=np.uint8)

    def put(mask: np.ndarray, structure: str) -> None:
        out[mask & (out == 0)] = L.CANONICAL[structure]

    femur, femoral_cartilage = _femur_group(x, y, z, spec, boxed)
    tibia, tibial_cartilage, menisci = _tibia_group(x, y, z, spec, boxed)
    patella, patellar_cartilage = _patella_group(x, y, z, spec, boxed)
    # Bones first; cartilage only fills background.
    put(femur, L.FEMUR)
    put(tibia, L.TIBIA)
    put(patella, L.PATELLA)
    put(femoral_cartilage, L.FEMORAL_CARTILAGE)
    put(tibial_cartilage[L.MEDIAL_TIBIAL_CARTILAGE], L.MEDIAL_TIBIAL_CARTILAGE)
    put(tibial_cartilage[L.LATERAL_TIBIAL_CARTILAGE], L.LATERAL_TIBIAL_CARTILAGE)
    put(patellar_cartilage, L.PATELLAR_CARTILAGE)
    put(menisci[L.MEDIAL_MENISCUS], L.MEDIAL_MENISCUS)
    put(menisci[L.LATERAL_MENISCUS], L.LATERAL_MENISCUS)
    return out


def _inside(box: np.ndarray, boxed: bool):
    """The indices of the points in ``box`` (all of them if not ``boxed``), and a function scattering a mask of those
    points back to all."""
    index = np.flatnonzero(box) if boxed else np.arange(len(box))

    def scatter(mask: np.ndarray) -> np.ndarray:
        full = np.zeros(len(box), dtype=bool)
        full[index] = mask
        return full

    return index, scatter


def _femur_group(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, spec: PhantomSpec, boxed: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Femur (shaft, condyles, trochlea) and femoral cartilage."""
    zc, R = _geometry(spec)["zc"], CONDYLE_RADIUS
    reach = R + spec.femoral_mm + BOX_MARGIN_MM  # condyles' and trochlea's shells, from their centres or axis
    shaft_reach = SHAFT_RADIUS + BOX_MARGIN_MM
    near_condyles = (np.abs(z - zc) <= reach) & (np.abs(y) <= reach) & (np.abs(x) <= CONDYLE_X + reach)
    near_shaft = (z >= zc) & (np.abs(x) <= shaft_reach) & (np.abs(y) <= shaft_reach)
    index, scatter = _inside(near_condyles | near_shaft, boxed)
    x, y, z = x[index], y[index], z[index]

    shaft = (z >= zc) & (x**2 + y**2 <= SHAFT_RADIUS**2)
    condyle_cart = np.zeros(len(x), dtype=bool)
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
    return scatter(femur), scatter(condyle_cart)


def _tibia_group(x: np.ndarray, y: np.ndarray, z: np.ndarray, spec: PhantomSpec, boxed: bool):
    """Tibia, tibial cartilage and menisci (the last two by structure).

    Each plateau is tilted about its own centre (7 deg posterior slope, 3 deg varus), so the cartilage slabs are not
    aligned with the voxel grid (aligned slabs would all voxelise alike).
    """
    normals = {
        cx: _unit([np.sign(cx) * np.tan(np.radians(3.0)), np.tan(np.radians(7.0)), 1.0])
        for cx in (CONDYLE_X, -CONDYLE_X)
    }
    # The box: the plateau ellipse (40 x 26 mm) and, below z = -12, the shaft (radius 15), up to the highest point
    # at most `top` above a plateau (cartilage or meniscus) anywhere in that box.
    half_x, half_y = 40.0 + BOX_MARGIN_MM, 26.0 + BOX_MARGIN_MM
    top = max(*spec.compartment_tibial_mm.values(), _meniscus_height(MENISCUS_RHO[1]))
    z_top = BOX_MARGIN_MM + max(
        (top + (half_x + CONDYLE_X) * abs(n[0]) + half_y * abs(n[1])) / n[2] for n in normals.values()
    )
    shaft_reach = 15.0 + BOX_MARGIN_MM
    box = (z <= z_top) & (np.abs(x) <= half_x) & (np.abs(y) <= half_y)
    box &= (z >= -12 - BOX_MARGIN_MM) | ((np.abs(x) <= shaft_reach) & (np.abs(y) <= shaft_reach))
    index, scatter = _inside(box, boxed)
    x, y, z = x[index], y[index], z[index]

    tibia = (z < -12) & (x**2 + y**2 <= 15**2)
    heights = {}
    for cx, normal in normals.items():
        h = (x - cx) * normal[0] + y * normal[1] + z * normal[2]  # height above this plateau, along its normal
        u = np.stack([x - cx, y, z]) - h * normal[:, None]  # foot point in the plateau (cut walls along the normal)
        heights[cx] = (h, u)
        half = (x >= 0) if cx > 0 else (x < 0)
        tibia |= half & (h <= 0) & (z >= -12) & ((x / 40) ** 2 + (y / 26) ** 2 <= 1)

    tibial_mm = spec.compartment_tibial_mm
    cartilage, menisci = {}, {}
    for cx, structure, side in (
        (CONDYLE_X, L.MEDIAL_TIBIAL_CARTILAGE, "medial"),
        (-CONDYLE_X, L.LATERAL_TIBIAL_CARTILAGE, "lateral"),
    ):
        h, u = heights[cx]
        cartilage[structure] = scatter((h > 0) & (h <= tibial_mm[side]) & ((u[0] / 11) ** 2 + (u[1] / 15) ** 2 <= 1))
    for cx, structure in ((CONDYLE_X, L.MEDIAL_MENISCUS), (-CONDYLE_X, L.LATERAL_MENISCUS)):
        h, u = heights[cx]
        rho = np.sqrt((u[0] / 11) ** 2 + (u[1] / 15) ** 2)
        opening = (-np.sign(cx) * u[0] > 0) & (np.abs(u[1]) < 6)  # C shape, open toward the notch
        inner, outer = MENISCUS_RHO
        menisci[structure] = scatter(
            (rho >= inner) & (rho <= outer) & (h > 0) & (h <= _meniscus_height(rho)) & ~opening
        )
    return scatter(tibia), cartilage, menisci


def _patella_group(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, spec: PhantomSpec, boxed: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Patella and patellar cartilage, in the patella's own frame (tilted 10 deg about the vertical and 6 deg about
    the medial-lateral axis)."""
    g = _geometry(spec)
    px, pyy, pzz = _rotate(np.stack([x, y - g["patella_face_y"], z - g["patella_z"]]), z_deg=10.0, x_deg=6.0)
    m = BOX_MARGIN_MM
    box = (np.abs(px) <= 20 + m) & (np.abs(pzz) <= 17 + m) & (pyy >= -10 - m) & (pyy <= spec.patellar_mm + m)
    index, scatter = _inside(box, boxed)
    px, pyy, pzz = px[index], pyy[index], pzz[index]
    patella = (pyy <= 0) & ((px / 20) ** 2 + (pyy / 10) ** 2 + (pzz / 17) ** 2 <= 1)
    cartilage = (pyy > 0) & (pyy <= spec.patellar_mm) & ((px / 13) ** 2 + (pzz / 12) ** 2 <= 1)
    return scatter(patella), scatter(cartilage)


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
