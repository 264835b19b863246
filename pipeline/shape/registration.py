"""Similarity ICP of a patient bone surface onto the model's mean shape (model-formats §1.9).

Follows ``vtkIterativeClosestPointTransform`` semantics: landmarks are every ``step``-th source vertex (at most
``max_landmarks``), the start matches centroids, each iteration pairs the current landmarks with their closest
points on the target *surface* and composes one landmark similarity transform; all iterations run (no mean-distance
check). The similarity's rotation is the least-squares (Kabsch/Umeyama) one and its scale is VTK's ratio of RMS
spreads about the centroids, sqrt(sum|b - b_c|^2 / sum|a - a_c|^2), not Umeyama's least-squares scale, which
shrinks when correspondences are noisy.
"""

from __future__ import annotations

import numpy as np

from .geometry import MeshDistance, apply_transform


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4x4 similarity (rotation, isotropic scale, translation) taking ``source`` (N, 3) onto paired ``target``."""
    src_c, tgt_c = source.mean(axis=0), target.mean(axis=0)
    a, b = source - src_c, target - tgt_c
    u, _, vt = np.linalg.svd(b.T @ a)  # cross-covariance target x source
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag([1.0, 1.0, d]) @ vt  # proper rotation, never a reflection
    scale = np.sqrt((b * b).sum() / max((a * a).sum(), 1e-300))
    matrix = np.eye(4)
    matrix[:3, :3] = scale * rotation
    matrix[:3, 3] = tgt_c - scale * rotation @ src_c
    return matrix


def landmark_indices(n_points: int, max_landmarks: int) -> np.ndarray:
    """VTK's landmark choice: every ``n // max`` -th vertex (integer division), ``n // step`` of them."""
    step = n_points // max_landmarks if max_landmarks < n_points else 1
    return np.arange(n_points // step) * step


def similarity_icp(
    source_points: np.ndarray,
    target_points: np.ndarray,
    target_faces: np.ndarray,
    *,
    iterations: int = 100,
    max_landmarks: int = 1000,
) -> np.ndarray:
    """4x4 matrix M mapping ``source_points`` (N, 3) onto the surface (``target_points``, ``target_faces``).

    Units are free (here: patient mm -> model space); M includes the isotropic scale between them.
    """
    target = MeshDistance(target_points, target_faces)
    landmarks = np.asarray(source_points, dtype=np.float64)[landmark_indices(len(source_points), max_landmarks)]
    matrix = np.eye(4)
    matrix[:3, 3] = target_points.mean(axis=0) - source_points.mean(axis=0)  # start: match centroids
    current = apply_transform(matrix, landmarks)
    for _ in range(iterations):
        # Approximate closest points while far away; they are exact once the landmarks are near the surface.
        step = similarity_transform(current, target.query(current, exact=False).closest)
        current = apply_transform(step, current)
        matrix = step @ matrix
    return matrix
