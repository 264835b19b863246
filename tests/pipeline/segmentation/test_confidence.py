"""Network confidence from the logits: known answers on constructed logits, nnU-Net's real mirroring loop with
networks of known behaviour, and the demo model (its confidence against the true Dice of the built-in example)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline import labels as L
from pipeline.quality import expected_dice
from pipeline.segmentation.confidence import ConfidenceAccumulator, logit_sums, sampling_stride
from tests.fixtures.quality import COARSE, demo_engine, example_analysis


def _boxes(shape=(20, 24, 28), d1=3.0, d2=1.0, d0=4.0):
    """Background (logit margin d0), class 1 in one box (margin d1 over the two others), class 2 in another (d2)."""
    logits = torch.zeros((3, *shape))
    logits[0] = d0  # background: p = e^d0 / (e^d0 + 2)
    one, two = (slice(4, 10), slice(5, 13), slice(6, 16)), (slice(12, 17), slice(5, 11), slice(6, 12))
    logits[(0, *one)], logits[(1, *one)] = 0.0, d1
    logits[(0, *two)], logits[(2, *two)] = 0.0, d2
    return logits, one, two


def _box_voxels(box) -> tuple[int, int]:
    """(voxels, boundary voxels) of a box well inside the array: its surface layer is its boundary band."""
    sizes = [s.stop - s.start for s in box]
    inner = int(np.prod([n - 2 for n in sizes]))
    return int(np.prod(sizes)), int(np.prod(sizes)) - inner


def test_logit_sums_known_answers():
    logits, one, two = _boxes()
    sums = logit_sums(logits.half(), 3)
    n1, b1 = _box_voxels(one)
    n2, b2 = _box_voxels(two)
    p1, p2, p0 = np.exp(3) / (np.exp(3) + 2), np.exp(1) / (np.exp(1) + 2), np.exp(4) / (np.exp(4) + 2)
    assert list(sums["voxels"]) == [logits[0].numel() - n1 - n2, n1, n2]
    assert sums["boundary_voxels"][1] == b1 and sums["boundary_voxels"][2] == b2
    assert sums["probability"][1] / n1 == pytest.approx(p1, rel=1e-3)  # fp16 logits: 3 significant digits
    assert sums["probability"][2] / n2 == pytest.approx(p2, rel=1e-3)
    assert sums["boundary_probability"][1] / b1 == pytest.approx(p1, rel=1e-3)
    # soft volume of class 1: p1 inside its box, (1 - p2) / 2 inside box 2, (1 - p0) / 2 elsewhere
    rest = logits[0].numel() - n1 - n2
    assert sums["soft_volume"][1] == pytest.approx(n1 * p1 + n2 * (1 - p2) / 2 + rest * (1 - p0) / 2, rel=1e-3)


def test_logit_sums_agree_with_softmax_in_any_slab_size():
    """Against torch.softmax/argmax over the whole array (an independent reference), streamed in slabs of any size."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn((5, 17, 19, 23), generator=generator) * 3
    probabilities = torch.softmax(logits, 0)
    top, label = probabilities.max(0)
    reference_soft = probabilities.sum(dim=(1, 2, 3)).numpy()
    reference_probability = torch.bincount(label.ravel(), weights=top.ravel().double(), minlength=5).numpy()
    for slab in (5 * 19 * 23, 7 * 5 * 19 * 23, 10**9):  # one slice, seven slices, everything at once
        sums = logit_sums(logits, 5, slab_elements=slab)
        assert np.array_equal(sums["voxels"], torch.bincount(label.ravel(), minlength=5).numpy())
        assert np.allclose(sums["probability"], reference_probability, rtol=1e-5)
        assert np.allclose(sums["soft_volume"], reference_soft, rtol=1e-5)
    whole, sliced = logit_sums(logits, 5), logit_sums(logits, 5, slab_elements=5 * 19 * 23)
    assert np.array_equal(whole["boundary_voxels"], sliced["boundary_voxels"])  # the halo sees across slabs


def test_large_grids_are_sampled_in_plane():
    assert sampling_stride((160, 384, 384)) == 2 and sampling_stride((89, 90, 63)) == 1
    logits, _, _ = _boxes((8, 40, 40))
    sampled = logit_sums(logits, 3, max_voxels=3200)  # stride 2: a quarter of the voxels
    assert sampled["voxels"].sum() == 8 * 20 * 20
    assert sampled["probability"][1] / sampled["voxels"][1] == pytest.approx(np.exp(3) / (np.exp(3) + 2), rel=1e-5)


def test_expected_dice_of_crisp_and_unsure_structures():
    crisp = ConfidenceAccumulator(3).finish(_boxes(d1=30.0, d2=30.0, d0=30.0)[0]).structures["1"]
    assert crisp.mean_probability == pytest.approx(1.0) and crisp.soft_volume_ratio == pytest.approx(1.0)
    assert expected_dice(crisp) == pytest.approx(1.0, abs=1e-6)
    # all three logits equal in box 2 (argmax: the lowest, background) and box 1 crisp: class 2 owns no voxel
    logits, one, two = _boxes(d1=30.0, d2=0.0, d0=30.0)
    logits[(1, *two)] = 0.0
    logits[(2, *one)] = 29.0  # box 1: class 2 a close second, p2 = e^-1 / (1 + e^-1)
    unsure = ConfidenceAccumulator(3).finish(logits).structures["1"]
    p1 = 1 / (1 + np.exp(-1.0))
    n1, n2 = _box_voxels(one)[0], _box_voxels(two)[0]
    assert unsure.mean_probability == pytest.approx(p1, rel=1e-5)
    assert unsure.soft_volume_ratio == pytest.approx((n1 * p1 + n2 / 3) / n1, rel=1e-5)
    assert expected_dice(unsure) == pytest.approx(2 * p1 / (1 + (n1 * p1 + n2 / 3) / n1), rel=1e-5)


def _predictor(axes, network):
    """nnU-Net's predictor with KneeScope's tile hooks, holding a plain function as its network: the real mirroring
    loop (``_internal_maybe_mirror_and_predict``) runs on it."""
    from pipeline.segmentation.predictor import predictor_class

    predictor = predictor_class()(use_mirroring=True, device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    predictor.allowed_mirroring_axes = axes
    predictor.network = network
    predictor._accumulator = ConfidenceAccumulator(2, mirror_axes=axes)
    return predictor


def test_mirror_votes_flip_back_before_comparing():
    """A voxel-wise network commutes with flips: every mirrored copy, flipped back, agrees everywhere."""
    x = torch.randn((1, 1, 6, 7, 8), generator=torch.Generator().manual_seed(1))
    predictor = _predictor((0, 1, 2), lambda t: torch.cat([t, -t], dim=1))
    out = predictor._predict_tile(x)
    assert torch.allclose(out, torch.cat([x, -x], dim=1), atol=1e-6)  # nnU-Net's average, unchanged
    confidence = predictor._accumulator.finish(torch.zeros((2, 2, 2, 2)))
    assert confidence.mirror_axes == (0, 1, 2)
    assert all(
        c.mirror_disagreement == 0.0 for c in confidence.structures.values() if c.mirror_disagreement is not None
    )


def test_mirror_disagreement_of_a_network_that_ignores_its_input():
    """Logits fixed to a ramp r(z) = z - 1.25 over 8 slices: the copy mirrored along z, flipped back, says
    r(7 - z). Their mean is 2.25 > 0: class 1 everywhere; the unmirrored copy disagrees at z = 0, 1 and the
    mirrored one at z = 6, 7, so half of the voxels see a disagreement."""
    ramp = (torch.arange(8.0) - 1.25).reshape(1, 1, 8, 1, 1).expand(1, 1, 8, 3, 3)
    predictor = _predictor((0,), lambda t: torch.cat([torch.zeros_like(ramp), ramp], dim=1))
    predictor._predict_tile(torch.zeros((1, 1, 8, 3, 3)))
    confidence = predictor._accumulator.finish(torch.zeros((2, 2, 2, 2)))
    assert confidence.structures["1"].mirror_disagreement == pytest.approx(0.5)


def test_demo_model_confidence_tracks_the_true_dice():
    """The built-in example: the expected Dice of each cartilage plate is within 0.12 of its true Dice, and their
    mean within 0.06 (the probabilities are slightly underconfident on thin plates)."""
    phantom, result = example_analysis()
    confidence = result.segmentation_qc.network
    assert set(confidence.structures) == set(L.STRUCTURES) and confidence.spacing_mm == (1.0, 1.0, 1.0)
    errors = []
    for name in L.CARTILAGES:
        value = L.CANONICAL[name]
        truth, found = phantom.labels.array == value, result.labels.array == value
        dice = 2 * np.logical_and(truth, found).sum() / (truth.sum() + found.sum())
        errors.append(expected_dice(confidence.structures[name]) - dice)
    assert max(abs(e) for e in errors) < 0.12 and abs(float(np.mean(errors))) < 0.06, errors
    provenance = result.provenance["segmentation"]["confidence"]
    assert provenance["in_plane_sampling_stride"] == 1 and provenance["seconds"] >= 0


@pytest.mark.slow
def test_confidence_leaves_the_segmentation_unchanged_with_mirroring():
    """Measuring confidence (with mirror votes) does not change the labels; the demo model, trained without
    flips other than left-right, disagrees with its mirrored copies (its mirror disagreement is large)."""
    from pipeline.synthetic import make_phantom, render_mr

    image = render_mr(make_phantom(side="left", spacing=COARSE).labels, seed=5)
    engine = demo_engine()
    segmenter = engine._segmenter(None)
    try:
        segmenter.measure_confidence = False
        plain = engine.segment(image, mirroring=True, require_knee=False)
        segmenter.measure_confidence = True
        measured = engine.segment(image, mirroring=True, require_knee=False)
    finally:
        segmenter.measure_confidence = True
    assert plain.confidence is None and measured.confidence is not None
    assert np.array_equal(plain.labels.array, measured.labels.array)
    assert measured.confidence.mirror_axes == (0, 1, 2)
    disagreement = [c.mirror_disagreement for c in measured.confidence.structures.values()]
    assert all(d is not None and 0.0 <= d <= 1.0 for d in disagreement) and max(disagreement) > 0.5
