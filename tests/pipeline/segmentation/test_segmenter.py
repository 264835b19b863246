"""Segmentation engine: MRI -> results with the bundled demo model, cascade wiring, progress, clear failures.

The demo model must reach a mean Dice of 0.85 over the nine structures on synthetic knees it never saw, at the
phantom's own 0.36 x 0.36 x 0.7 mm grid. The cascade is exercised with a tiny random-weight lowres/cascade pair in
the published layout (built in a temporary folder by test_weights.write_tiny_published_model).
"""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest

from pipeline import labels as L
from pipeline import segmentation as segment
from pipeline import weights
from pipeline.config import InferenceOptions
from pipeline.errors import EmptySegmentationError, InvalidInputError, KneePipelineError, WeightsUnavailableError
from pipeline.io import load_label_map, write_volume
from pipeline.synthetic import PhantomSpec, make_phantom, render_mr
from pipeline.volume import Volume
from tests.fixtures.knees import phantom
from tests.fixtures.memory import arrays_left_in_cycles
from tests.pipeline.weights.test_weights import DATASET, PREFIX, tiny_repo  # noqa: F401 - tiny_repo is a fixture used below

MEAN_DICE_MIN = 0.85
CPU = InferenceOptions(device="cpu")


def dice_per_structure(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice of every canonical structure (1.0 when absent from both)."""
    out = {}
    for name, value in L.CANONICAL.items():
        a, b = pred == value, truth == value
        total = int(a.sum() + b.sum())
        out[name] = 2.0 * float(np.logical_and(a, b).sum()) / total if total else 1.0
    return out


@pytest.fixture(scope="module")
def demo_engine():
    from pipeline.engine import Engine

    return Engine.load("demo", inference=InferenceOptions(device="cpu"))


@pytest.fixture(scope="module")
def right_knee_mri(tmp_path_factory):
    knee = phantom(side="right")  # 0.36 x 0.36 x 0.7 mm, sagittal, as the scanner writes DESS
    path = write_volume(render_mr(knee.labels, seed=2024), tmp_path_factory.mktemp("mri") / "right_knee.nii.gz")
    return knee, path


@pytest.fixture(scope="module")
def cli_run(right_knee_mri, tmp_path_factory):
    """`python -m pipeline analyze MRI --out OUT --model demo` (in-process), as a user would run it."""
    from pipeline.cli import main

    out = tmp_path_factory.mktemp("results")
    knee, path = right_knee_mri
    assert main(["analyze", str(path), "--out", str(out), "--model", "demo", "--device", "cpu"]) == 0
    return knee, out


# --- demo model, end to end ------------------------------------------------------------------------------------
def test_cli_mri_to_results_with_demo_model(cli_run):
    knee, out = cli_run
    for name in ("results.json", "results.csv", "provenance.json", "labels.nii.gz", "knee.glb", "meshes/femur.vtk"):
        assert (out / name).is_file(), name
    predicted = load_label_map(out / "labels.nii.gz", "canonical").volume
    assert not predicted.same_grid(knee.labels), "the segmentation comes back on the MRI's own grid"
    dice = dice_per_structure(predicted.array, knee.labels.array)
    assert np.mean(list(dice.values())) >= MEAN_DICE_MIN, dice
    assert min(dice.values()) > 0.8, dice
    results = json.loads((out / "results.json").read_text())
    assert results["laterality"]["side"] == "right"
    assert any("DEMO model" in w for w in results["qc"]["warnings"])
    femoral = results["cartilage"]["femoral"]["thickness_mm"]["mean"]
    assert abs(femoral - knee.truth_thickness_mm["femoral"]) < 0.4


def test_provenance_records_model_weights_and_device(cli_run):
    _, out = cli_run
    seg = json.loads((out / "provenance.json").read_text())["segmentation"]
    assert seg["model"] == "demo" and seg["revision"] == "bundled" and seg["device"] == "cpu"
    assert seg["configurations"] == ["3d_fullres"] and seg["mirroring"] is False
    demo = weights.get_entry("demo").files[0]
    assert list(seg["checkpoints"].values()) == [demo.sha256]
    assert seg["label_mapping"]["method"] == "names"
    assert seg["label_mapping"]["model_value_to_structure"]["7"] == "femur"  # native order remapped by name
    assert seg["seconds"]["total"] > 0 and seg["sliding_window_tiles"][0] >= 1


def test_left_knee_other_orientation_and_progress(demo_engine):
    spec = PhantomSpec(side="left", femoral_mm=1.8, tibial_mm=2.4, patellar_mm=2.2, spacing=(0.5, 0.5, 1.0),
                       orientation="coronal", centre_lps=(-15.0, 5.0, 20.0))  # fmt: skip
    knee = make_phantom(spec)
    calls: list[tuple[float, str]] = []
    seg = demo_engine.segment(render_mr(knee.labels, seed=99), progress=lambda f, m: calls.append((f, m)))
    dice = dice_per_structure(seg.labels.array, knee.labels.array)
    assert np.mean(list(dice.values())) >= MEAN_DICE_MIN, dice
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    tiles = [m for _, m in calls if "tile" in m]
    assert len(tiles) == seg.provenance["sliding_window_tiles"][0] - 1  # the last tile reports "resampling"


def test_blank_image_is_refused_before_segmenting(demo_engine):
    blank = Volume(np.zeros((40, 60, 60), np.float32), (0.5, 0.5, 1.0), (0, 0, 0), np.eye(3))
    with pytest.raises(InvalidInputError, match=r"every voxel has the same value \(0\)"):
        demo_engine.segment(blank)


def _bright_ball() -> Volume:
    """A bright ball in noise: MR-like intensities, nothing knee-shaped (the network calls it bone)."""
    zz, yy, xx = np.mgrid[:90, :90, :90]
    ball = ((zz - 45) ** 2 + (yy - 45) ** 2 + (xx - 45) ** 2 < 30**2).astype(np.float32) * 300 + 60
    image = ball + np.random.default_rng(0).normal(0, 15, ball.shape).astype(np.float32)
    return Volume(np.abs(image), (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3))


def _smooth_noise() -> Volume:
    """Smoothed noise: the network paints spongy fragments of every structure."""
    from scipy import ndimage

    noise = ndimage.gaussian_filter(np.random.default_rng(1).normal(200, 80, (100, 120, 100)).astype(np.float32), 3)
    return Volume(np.abs(noise), (0.5, 0.5, 1.0), (0, 0, 0), np.eye(3))


@pytest.mark.parametrize("make_image", [_bright_ball, _smooth_noise])
def test_non_knee_image_has_no_knee(demo_engine, make_image):
    with pytest.raises(EmptySegmentationError, match="No knee structures found"):
        demo_engine.segment(make_image())


def test_fallback_to_demo_when_published_weights_unavailable(tmp_path, monkeypatch):
    from pipeline.engine import Engine

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("KNEESCOPE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("KNEESCOPE_MODEL_DIR", raising=False)
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE"):
        Engine.load("fullres", inference=InferenceOptions(device="cpu"))
    engine = Engine.load("fullres", inference=InferenceOptions(device="cpu"), fallback_to_demo=True)
    assert engine.is_demo and "DEMO model" in engine.notice and "fullres" in engine.notice
    choices = {name: ok for name, ok, _ in engine.model_choices()}
    goyal = ("goyal-sagittal", "goyal-sagittal-v1", "goyal-coronal", "goyal-axial", "goyal-staple")
    assert choices == {"fullres": False, "cascade": False, **dict.fromkeys(goyal, False), "demo": True}


def test_cli_needs_an_image(tmp_path, capsys):
    from pipeline.cli import main

    assert main(["analyze", "--out", str(tmp_path)]) == 2
    assert "Give the MRI" in capsys.readouterr().err


# --- cascade and loading, with the tiny published-layout pair ---------------------------------------------------
@pytest.fixture(scope="module")
def small_mri():
    return render_mr(make_phantom(PhantomSpec(spacing=(1.2, 1.2, 1.2))).labels, seed=5)


def test_cascade_feeds_lowres_result_to_second_stage(tiny_repo, small_mri, monkeypatch):  # noqa: F811
    resolved = weights.resolve_model("cascade", model_dir=tiny_repo)
    # Random weights: no knee is expected, only the wiring is checked.
    segmenter = segment.Segmenter.from_model(resolved, options=CPU, require_knee=False)
    assert segmenter.configurations == ["3d_lowres", "3d_cascade_fullres"]
    second = segmenter._stages[1].predictor
    seen = []
    original = second.predict_single_npy_array

    def spy(data, properties, previous, *args):
        seen.append(previous)
        return original(data, properties, previous, *args)

    monkeypatch.setattr(second, "predict_single_npy_array", spy)
    result = segmenter.predict(small_mri)
    previous = seen[0]
    assert previous.shape == (1, *small_mri.array.shape) and previous.dtype == np.int16
    assert previous.max() <= 9  # lowres labels in the model's own values, one-hot encoded by nnU-Net
    assert result.labels.array.shape == small_mri.array.shape and result.labels.array.dtype == np.uint8
    assert not result.labels.same_grid(small_mri)
    info = result.provenance
    assert info["mirroring"] is False and info["label_mapping"]["method"] == "names"  # short names matched
    assert len(info["sliding_window_tiles"]) == 2 and info["fold"] == 1


def test_mirroring_option(tiny_repo, small_mri):  # noqa: F811
    resolved = weights.resolve_model("fullres", model_dir=tiny_repo)
    segmenter = segment.Segmenter.from_model(resolved, options=CPU.with_changes(mirroring=True), require_knee=False)
    # One 2 mm tile (the tiny model's patch), so the 8 mirrored passes stay cheap.
    crop = Volume(small_mri.array[:16, :32, :32], (2.0, 2.0, 2.0), small_mri.origin, small_mri.direction)
    mirrored = segmenter.predict(crop)
    plain = segmenter.predict(crop, mirroring=False)
    assert mirrored.provenance["mirroring"] is True and plain.provenance["mirroring"] is False
    assert mirrored.provenance["mirror_axes"] == [0, 1, 2] and plain.provenance["mirror_axes"] == []
    assert mirrored.provenance["sliding_window_tiles"] == [1]
    assert segmenter._stages[0].predictor.allowed_mirroring_axes == (0, 1, 2)


def test_one_case_at_a_time(tiny_repo, small_mri, monkeypatch):  # noqa: F811
    resolved = weights.resolve_model("fullres", model_dir=tiny_repo)
    segmenter = segment.Segmenter.from_model(resolved, options=CPU, require_knee=False)
    predictor = segmenter._stages[0].predictor
    original, active, overlaps = predictor.predict_single_npy_array, [0], []

    def counting(*args):
        active[0] += 1
        overlaps.append(active[0])
        try:
            return original(*args)
        finally:
            active[0] -= 1

    monkeypatch.setattr(predictor, "predict_single_npy_array", counting)
    threads = [threading.Thread(target=segmenter.predict, args=(small_mri,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [1, 1]


def test_checkpoint_that_does_not_fit_the_plans(tiny_repo, tmp_path):  # noqa: F811
    import torch

    copy = shutil.copytree(tiny_repo, tmp_path / "repo")
    path = copy / "models" / DATASET / f"{PREFIX}3d_fullres" / "fold_1" / "checkpoint_best.pth"
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["network_weights"] = dict(list(checkpoint["network_weights"].items())[:5])
    torch.save(checkpoint, path)
    resolved = weights.resolve_model("fullres", model_dir=copy)  # a readable file: only loading can tell
    with pytest.raises(WeightsUnavailableError) as err:
        segment.Segmenter.from_model(resolved, options=CPU)
    assert str(path) in str(err.value) and "Replace the files" in str(err.value)


def test_unknown_device_is_refused():
    with pytest.raises(KneePipelineError, match="Unknown device"):
        segment.select_device("tpu")


# --- post-processing ---------------------------------------------------------------------------------------------
def test_postprocess_keeps_largest_bone_and_real_cartilage_pieces():
    labels = np.zeros((20, 20, 30), np.uint8)
    femur, cartilage = L.CANONICAL["femur"], L.CANONICAL["femoral_cartilage"]
    labels[2:12, 2:12, 2:12] = femur
    labels[6, 6, 6] = 0  # a hole inside the bone
    labels[7, 7, 7] = cartilage  # an enclosed voxel of another label: bone marrow misread
    labels[16:18, 16:18, 16:18] = femur  # a stray bone island
    labels[14:16, 2:12, 2:12] = cartilage  # medial condyle's cartilage (200 voxels)
    labels[14:16, 2:12, 16:26] = cartilage  # lateral condyle's, a separate piece of the same size
    labels[2, 18, 28] = cartilage  # a speck
    cleaned, changes = segment.postprocess(labels)
    assert cleaned[6, 6, 6] == femur and cleaned[7, 7, 7] == femur
    assert not (cleaned[16:18, 16:18, 16:18] == femur).any()
    assert (cleaned[14:16, 2:12, 2:12] == cartilage).all() and (cleaned[14:16, 2:12, 16:26] == cartilage).all()
    assert cleaned[2, 18, 28] == 0
    assert changes == {"femur": -8 + 2, "femoral_cartilage": -1 - 1}  # the speck; the enclosed voxel became bone
    assert labels[6, 6, 6] == 0  # input untouched


def test_a_cpu_segmentation_leaves_no_arrays_in_cycles(demo_engine, small_mri):
    """Why segmentation.devices.release_memory skips the full collection on the CPU: refcounting frees every array
    and tensor of a segmentation, so the collection (~0.3 s with Python's lock held, in the app) would free none.
    (The Goyal segmenter: tests/pipeline/segmentation/goyal/test_segmenter.py.)"""
    segmentation, held = arrays_left_in_cycles(lambda: demo_engine.segment(small_mri, require_knee=False))
    assert segmentation.labels.array.any()
    assert held == []
