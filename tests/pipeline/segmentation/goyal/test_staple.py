"""STAPLE fusion of the three planes: known answers on a synthetic knee's native labels."""

from __future__ import annotations

import numpy as np

from pipeline import labels as L
from pipeline.segmentation.goyal.staple import staple_fuse
from tests.fixtures.knees import phantom

PATELLAR_CARTILAGE, FEMORAL_CARTILAGE = L.NATIVE[L.PATELLAR_CARTILAGE], L.NATIVE[L.FEMORAL_CARTILAGE]
TIBIA = L.NATIVE[L.TIBIA]


def _native_truth() -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for canonical, native in ((L.CANONICAL[s], L.NATIVE[s]) for s in L.STRUCTURES):
        lut[canonical] = native
    return lut[phantom(spacing=(0.8, 0.8, 0.9)).labels.array]


def test_two_right_planes_outvote_a_wrong_one():
    truth = _native_truth()
    wrong = truth.copy()
    wrong[truth == TIBIA] = 0  # the axial model misses the tibia
    fused = staple_fuse({"sagittal": truth, "coronal": truth, "axial": wrong})
    assert fused.labels.dtype == np.uint8 and fused.labels.shape == truth.shape
    assert float(np.mean(fused.labels == truth)) > 0.999
    assert float(np.mean(fused.labels[truth == TIBIA] == TIBIA)) > 0.99


def test_each_plane_votes_only_for_the_structures_it_is_trusted_with():
    truth = _native_truth()
    coronal = truth.copy()
    coronal[truth == FEMORAL_CARTILAGE] = PATELLAR_CARTILAGE  # coronal's patellar cartilage is never counted
    axial = truth.copy()
    axial[np.isin(truth, (3, 4, 5, 6))] = TIBIA  # axial's tibial cartilage and menisci are never counted either
    fused = staple_fuse({"sagittal": truth, "coronal": coronal, "axial": axial})
    femoral = truth == FEMORAL_CARTILAGE
    assert float(np.mean(fused.labels[femoral] == FEMORAL_CARTILAGE)) > 0.99
    assert not np.any(fused.labels[femoral] == PATELLAR_CARTILAGE)
    for label in (3, 4, 5, 6):  # only sagittal and coronal (both right) vote on these
        assert float(np.mean(fused.labels[truth == label] == label)) > 0.99
