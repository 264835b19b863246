"""Fusing the three planes' label maps with SimpleITK's MultiLabelSTAPLE, as upstream's ``goyal-staple``.

Each plane is trusted only for some structures (upstream's choice): the coronal model's patellar cartilage and the
axial model's tibial cartilage and menisci are set to background before fusion. Voxels STAPLE cannot decide become
background (upstream leaves them at an out-of-table value that its label remap then deletes). Upstream applies no
clean-up after the fusion; neither does this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: Native labels each plane's vote drops before fusion (1 patellar cartilage; 3-6 tibial cartilage and menisci).
EXCLUDED_LABELS: Mapping[str, tuple[int, ...]] = {"sagittal": (), "coronal": (1,), "axial": (3, 4, 5, 6)}
UNDECIDED = 255


@dataclass(frozen=True)
class Fused:
    labels: np.ndarray
    undecided_voxels: int


def staple_fuse(votes: Mapping[str, np.ndarray]) -> Fused:
    """Native label maps per plane (same shape) -> the STAPLE consensus (native labels, uint8)."""
    import SimpleITK as sitk

    images = []
    for plane, labels in votes.items():
        vote = np.array(labels, dtype=np.uint8)
        vote[np.isin(vote, EXCLUDED_LABELS[plane])] = 0
        images.append(sitk.GetImageFromArray(vote))
    fuser = sitk.MultiLabelSTAPLEImageFilter()
    fuser.SetLabelForUndecidedPixels(UNDECIDED)
    fused = sitk.GetArrayFromImage(fuser.Execute(images)).astype(np.uint8)
    undecided = fused == UNDECIDED
    fused[undecided] = 0
    return Fused(fused, int(undecided.sum()))
