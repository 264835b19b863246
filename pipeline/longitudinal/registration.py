"""Rigid registration of a follow-up bone surface onto the baseline's: trimmed point-to-plane ICP from several starts.

Bone only, so that cartilage change cannot bias the fit. Robust to a partial field of view: vertices near either
scan's field-of-view edge (where the surface is closed artificially) are left out, follow-up points that land
outside the baseline's field are ignored, and only the best ``trim_fraction`` of point pairs with agreeing normals
count. The first start is the centroid match without rotation (two visits are scanned alike); only when it ends in
a poor fit are principal-axis alignments tried too (a scan taken another way), and the rotation-free fit still wins
unless another is clearly better, so a near-symmetric bone (the patella) is never turned over. Point-to-point steps
bring a start close, then point-to-plane steps converge (nearest-vertex pairs on two different triangulations would
otherwise hold the surfaces a fraction of a vertex spacing apart).

A comparison registers each bone both ways (``register_both_ways``): follow-up onto baseline and baseline onto
follow-up, then takes the midpoint of the first and the inverse of the second. One-way ICP depends on which surface
is sampled, so swapping the visits would otherwise give a slightly different fit; the midpoint is exactly the
inverse when the visits are swapped, and how far the two one-way fits disagree is reported as a QC figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..morphometry.mesh import Surface
from ..volume import Volume


@dataclass(frozen=True)
class RigidTransform:
    """x -> rotation @ x + translation, in LPS mm."""

    rotation: np.ndarray
    translation: np.ndarray

    @classmethod
    def identity(cls) -> RigidTransform:
        return cls(np.eye(3), np.zeros(3))

    def apply(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, float) @ self.rotation.T + self.translation

    def inverse(self) -> RigidTransform:
        return RigidTransform(self.rotation.T, -self.rotation.T @ self.translation)

    def then(self, other: RigidTransform) -> RigidTransform:
        """This transform followed by ``other``."""
        return RigidTransform(other.rotation @ self.rotation, other.rotation @ self.translation + other.translation)

    def half(self) -> RigidTransform:
        """The transform that, applied twice, gives this one: half the rotation about the same axis (below 180°)."""
        from scipy.spatial.transform import Rotation

        rotation = Rotation.from_rotvec(Rotation.from_matrix(self.rotation).as_rotvec() / 2).as_matrix()
        # Applying (R_h, t_h) twice gives (R_h^2, R_h t_h + t_h): solve (R_h + I) t_h = t.
        return RigidTransform(rotation, np.linalg.solve(rotation + np.eye(3), self.translation))

    @property
    def matrix(self) -> np.ndarray:
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = self.rotation, self.translation
        return out

    @property
    def angle_deg(self) -> float:
        cos = np.clip((np.trace(self.rotation) - 1) / 2, -1.0, 1.0)
        return float(np.degrees(np.arccos(cos)))

    def euler_xyz_deg(self) -> tuple[float, float, float]:
        """Angles about the patient x, y, z axes (rotation = Rz @ Ry @ Rx), in degrees."""
        r = self.rotation
        y = np.arcsin(-np.clip(r[2, 0], -1.0, 1.0))
        x = np.arctan2(r[2, 1], r[2, 2])
        z = np.arctan2(r[1, 0], r[0, 0])
        return tuple(float(np.degrees(a)) for a in (x, y, z))  # type: ignore[return-value]

    def to_dict(self) -> dict:
        return {
            "rotation_deg": round(self.angle_deg, 4),
            "rotation_xyz_deg": [round(a, 4) for a in self.euler_xyz_deg()],
            "translation_mm": [round(float(t), 4) for t in self.translation],
            "matrix": [[round(float(v), 8) for v in row] for row in self.matrix],
        }


@dataclass(frozen=True)
class RegistrationOptions:
    """How bones are registered. Distances in mm."""

    n_points: int = 3000  # follow-up vertices used (evenly picked); the baseline keeps all of its own
    trim_fraction: float = 0.9  # the closest 90 % of pairs count: osteophytes, segmentation slips, unmatched ends
    min_normal_cos: float = 0.5  # pairs whose surface normals differ by more than 60 degrees are not pairs
    fov_margin_mm: float = 3.0  # vertices this close to a field-of-view edge belong to the artificial closing cap
    coarse_iterations: int = 15
    max_iterations: int = 50
    tolerance_mm: float = 1e-5  # stop when an update moves no point by more than this
    good_fit_mm: float = 0.5  # a rotation-free fit this close needs no other start
    prefer_unrotated: float = 1.25  # the rotation-free fit wins unless another's residual is this much smaller
    both_ways: bool = True  # register both ways and take the midpoint (False: follow-up onto baseline only)


@dataclass(frozen=True)
class BoneRegistration:
    """The rigid transform taking one bone's follow-up surface onto its baseline surface, and how well it fits.

    Attributes:
        transform: follow-up LPS mm -> baseline LPS mm.
        residual_rms_mm: RMS point-to-surface distance over the pairs that counted.
        overlap_fraction: share of the follow-up's points that counted (inside both fields, trimmed, normals agree).
        centre: centroid (LPS mm) of the follow-up bone points used; its shift tells how far the bone moved.
        inverse_consistency_mm: registered both ways, how far the two one-way fits disagree: the larger of the RMS
            distances that a bone's points move when carried by one fit and back by the other (None: one way only).
    """

    bone: str
    transform: RigidTransform
    centre: np.ndarray
    residual_rms_mm: float
    overlap_fraction: float
    n_pairs: int
    iterations: int
    inverse_consistency_mm: float | None = None

    @property
    def centre_shift_mm(self) -> np.ndarray:
        """How far the bone's centre moves from the follow-up onto the baseline (independent of the LPS origin)."""
        return self.transform.apply(self.centre[None])[0] - self.centre

    def to_dict(self) -> dict:
        return {
            **self.transform.to_dict(),
            "direction": "follow-up to baseline",
            "centre_shift_mm": [round(float(v), 4) for v in self.centre_shift_mm],
            "residual_rms_mm": round(self.residual_rms_mm, 4),
            "overlap_fraction": round(self.overlap_fraction, 4),
            "n_pairs": self.n_pairs,
            "iterations": self.iterations,
            "inverse_consistency_mm": None
            if self.inverse_consistency_mm is None
            else round(self.inverse_consistency_mm, 4),
        }


def register_bone(
    followup: Surface,
    baseline: Surface,
    *,
    followup_grid: Volume | None = None,
    baseline_grid: Volume | None = None,
    options: RegistrationOptions | None = None,
) -> BoneRegistration:
    """Register ``followup`` onto ``baseline`` (outward-oriented bone surfaces in LPS mm), one way.

    Args:
        followup_grid, baseline_grid: the label-map grids the surfaces were built on (their fields of view);
            without them every vertex is used.
    Raises:
        InvalidInputError: too little of either surface lies inside its field of view to register it.
    """
    fit = _OneWay.run(followup, baseline, followup_grid, baseline_grid, options or RegistrationOptions())
    return BoneRegistration(
        followup.name, fit.transform, fit.centre, fit.rms, fit.used / fit.n_source, fit.used, fit.iterations
    )


def register_both_ways(
    followup: Surface,
    baseline: Surface,
    *,
    followup_grid: Volume | None = None,
    baseline_grid: Volume | None = None,
    options: RegistrationOptions | None = None,
) -> BoneRegistration:
    """Register ``followup`` onto ``baseline`` symmetrically: swapping the two gives exactly the inverse transform.

    Both one-way fits are made; the result is their midpoint (follow-up -> baseline). Its residual and overlap are
    the worse of the two directions' for that one transform, so a refusal does not depend on the visits' order.
    """
    options = options or RegistrationOptions()
    forward = _OneWay.run(followup, baseline, followup_grid, baseline_grid, options)
    backward = _OneWay.run(baseline, followup, baseline_grid, followup_grid, options)
    transform = midpoint(forward.transform, backward.transform.inverse())
    rms_forward, used_forward = forward.problem.residual(transform)
    rms_backward, used_backward = backward.problem.residual(transform.inverse())
    round_trips = (
        forward.transform.then(backward.transform).apply(forward.problem.source) - forward.problem.source,
        backward.transform.then(forward.transform).apply(backward.problem.source) - backward.problem.source,
    )
    consistency = max(float(np.sqrt(np.mean(np.sum(d**2, axis=1)))) for d in round_trips)
    return BoneRegistration(
        followup.name,
        transform,
        forward.centre,
        max(rms_forward, rms_backward),
        min(used_forward / forward.n_source, used_backward / backward.n_source),
        min(used_forward, used_backward),
        forward.iterations + backward.iterations,
        inverse_consistency_mm=consistency,
    )


def midpoint(a: RigidTransform, b: RigidTransform) -> RigidTransform:
    """The rigid transform halfway from ``a`` to ``b`` (both mapping the same space): a o (a^-1 o b)^(1/2).

    midpoint(a, b) is the inverse of midpoint(b^-1, a^-1), which makes a two-way registration symmetric.
    """
    return b.then(a.inverse()).half().then(a)


@dataclass(frozen=True)
class _OneWay:
    """One ICP fit of a source surface onto a target surface, and the problem it was fitted on."""

    problem: _Problem
    transform: RigidTransform
    rms: float
    used: int
    iterations: int

    @property
    def n_source(self) -> int:
        return len(self.problem.source)

    @property
    def centre(self) -> np.ndarray:
        return self.problem.source.mean(0)

    @classmethod
    def run(
        cls,
        source_surface: Surface,
        target_surface: Surface,
        source_grid: Volume | None,
        target_grid: Volume | None,
        options: RegistrationOptions,
    ) -> _OneWay:
        from scipy.spatial import cKDTree

        source, source_normals = _inside_field(source_surface, source_grid, options.fov_margin_mm)
        target, target_normals = _inside_field(target_surface, target_grid, options.fov_margin_mm)
        if len(source) < 100 or len(target) < 100:
            raise InvalidInputError(
                f"The {source_surface.name} lies almost entirely at the edge of a scan's field of view: too little of "
                "it to register the two visits."
            )
        pick = np.linspace(0, len(source) - 1, min(options.n_points, len(source))).astype(int)
        problem = _Problem(
            source[pick], source_normals[pick], target, target_normals, cKDTree(target), target_grid, options
        )
        unrotated, *others = _starts(problem.source, problem.target)
        fits = [problem.fit(unrotated)]
        if fits[0][1] > options.good_fit_mm:  # a poor fit: maybe scanned another way round; refine the best other
            coarse = [problem.refine(start, options.coarse_iterations, point_to_plane=False)[0] for start in others]
            fits.append(problem.fit(min(coarse, key=lambda transform: problem.residual(transform)[0])))
        transform, rms, used, iterations = _choose(fits, options.prefer_unrotated)
        return cls(problem, transform, rms, used, iterations)


def _inside_field(surface: Surface, grid: Volume | None, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    normals = surface.vertex_normals()
    if grid is None:
        return surface.points, normals
    keep = _in_field(grid, surface.points, margin_mm)
    return surface.points[keep], normals[keep]


def _in_field(grid: Volume, points: np.ndarray, margin_mm: float) -> np.ndarray:
    """Points at least ``margin_mm`` inside the grid's field of view."""
    ijk = grid.physical_to_index(points)
    margin = margin_mm / np.asarray(grid.spacing)
    upper = np.asarray(grid.size) - 1 - margin
    return np.all((ijk >= margin) & (ijk <= upper), axis=1)


def _starts(source: np.ndarray, target: np.ndarray) -> list[RigidTransform]:
    """Rotation-free centroid match first, then the four proper principal-axis alignments."""
    cs, ct = source.mean(0), target.mean(0)
    starts = [RigidTransform(np.eye(3), ct - cs)]
    _, us = np.linalg.eigh(np.cov((source - cs).T))
    _, ut = np.linalg.eigh(np.cov((target - ct).T))
    for signs in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
        rotation = ut @ np.diag(signs) @ us.T
        if np.linalg.det(rotation) < 0:
            rotation = ut @ np.diag([-s for s in signs]) @ us.T
        starts.append(RigidTransform(rotation, ct - rotation @ cs))
    return starts


def _choose(fits: list[tuple], prefer_unrotated: float) -> tuple:
    """The rotation-free fit (the first) unless another's residual is clearly smaller."""
    best = min(fits, key=lambda fit: fit[1])
    return fits[0] if fits[0][1] <= prefer_unrotated * best[1] + 1e-3 else best


@dataclass(frozen=True)
class _Problem:
    source: np.ndarray
    source_normals: np.ndarray
    target: np.ndarray
    target_normals: np.ndarray
    tree: object  # scipy.spatial.cKDTree of target
    field: Volume | None
    options: RegistrationOptions

    def pairs(self, transform: RigidTransform, *, check_normals: bool = True):
        """Moved source points, their nearest targets' points and normals, for the pairs that count."""
        moved = transform.apply(self.source)
        distance, nearest = self.tree.query(moved)  # type: ignore[attr-defined]
        keep = np.isfinite(distance)
        if self.field is not None:
            keep &= _in_field(self.field, moved, self.options.fov_margin_mm)
        if check_normals:
            turned = self.source_normals @ transform.rotation.T
            keep &= np.einsum("ij,ij->i", turned, self.target_normals[nearest]) >= self.options.min_normal_cos
        if keep.sum() < 10:
            return moved[:0], moved[:0], moved[:0]
        keep &= distance <= np.quantile(distance[keep], self.options.trim_fraction)
        return moved[keep], self.target[nearest[keep]], self.target_normals[nearest[keep]]

    def fit(self, start: RigidTransform) -> tuple[RigidTransform, float, int, int]:
        """Point-to-point steps, then point-to-plane steps to convergence: (transform, rms, pairs, iterations)."""
        coarse, n_coarse = self.refine(start, self.options.coarse_iterations, point_to_plane=False)
        transform, n_fine = self.refine(coarse, self.options.max_iterations, point_to_plane=True)
        rms, used = self.residual(transform)
        return transform, rms, used, n_coarse + n_fine

    def refine(self, start: RigidTransform, iterations: int, *, point_to_plane: bool) -> tuple[RigidTransform, int]:
        transform = start
        for iteration in range(1, iterations + 1):
            p, q, n = self.pairs(transform, check_normals=point_to_plane)
            if len(p) < 10:
                return transform, iteration
            step = _plane_step(p, q, n) if point_to_plane else _kabsch(p, q)
            transform = transform.then(step)
            reach = np.abs(p - p.mean(0)).max()
            if np.linalg.norm(step.translation) + np.radians(step.angle_deg) * reach < self.options.tolerance_mm:
                return transform, iteration
        return transform, iterations

    def residual(self, transform: RigidTransform) -> tuple[float, int]:
        """RMS point-to-plane distance (mm) over the pairs that count, and their number."""
        p, q, n = self.pairs(transform)
        if len(p) == 0:
            return float("inf"), 0
        return float(np.sqrt(np.mean(np.einsum("ij,ij->i", p - q, n) ** 2))), len(p)


def _kabsch(p: np.ndarray, q: np.ndarray) -> RigidTransform:
    """The rigid transform minimising sum |R p + t - q|^2."""
    cp, cq = p.mean(0), q.mean(0)
    u, _, vt = np.linalg.svd((p - cp).T @ (q - cq))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return RigidTransform(rotation, cq - rotation @ cp)


def _plane_step(p: np.ndarray, q: np.ndarray, n: np.ndarray) -> RigidTransform:
    """One linearised point-to-plane step: small rotation w about the pairs' centroid c and shift v minimising
    sum(((p - q) . n + w . ((p - c) x n) + v . n)^2)."""
    c = p.mean(0)
    a = np.hstack([np.cross(p - c, n), n])
    b = -np.einsum("ij,ij->i", p - q, n)
    x, *_ = np.linalg.lstsq(a, b, rcond=None)
    rotation = _rotation_from_vector(x[:3])
    return RigidTransform(rotation, c - rotation @ c + x[3:])


def _rotation_from_vector(w: np.ndarray) -> np.ndarray:
    """Rodrigues: the rotation by |w| radians about w."""
    angle = float(np.linalg.norm(w))
    if angle < 1e-15:
        return np.eye(3)
    k = w / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
