"""Goyal segmenters from a weights cache in the published layout, through the engine like nnU-Net's.

The weights are the test stand-in (tests/goyal_fixtures.py): a tiny U-Net of the family trained on synthetic knees by
real Keras and saved under aagatti/dosma_bones' file names, in a hand-built huggingface_hub cache. Known answers: the
phantom's own labels (the stand-in must find its bones and cartilage), the files' sha256, the cache's commit.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from pipeline import labels as L
from pipeline.config import InferenceOptions
from pipeline.engine import Engine
from pipeline.errors import WeightsUnavailableError
from pipeline.weights import resolve_model, sha256_file
from tests.fixtures.goyal import FAKE_COMMIT, REPO_FOLDER, STANDIN_INFO, standin_knee, write_standin_cache
from tests.fixtures.memory import arrays_left_in_cycles

pytestmark = pytest.mark.skipif(not STANDIN_INFO, reason="the Goyal stand-in (tests/data/goyal/standin) is absent")

#: OpenVINO fp32 is the fastest exact backend for the stand-in here; 'auto' is exercised by the app test.
CPU = InferenceOptions(device="cpu", backend="openvino", precision="fp32")
#: The stand-in is small and trained briefly; these bound what it must reach on the synthetic knee (Dice).
MIN_DICE = {L.FEMUR: 0.8, L.TIBIA: 0.8, L.FEMORAL_CARTILAGE: 0.75}


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return write_standin_cache(tmp_path_factory.mktemp("goyal-weights"))


@pytest.fixture
def cache(weights_dir, monkeypatch):
    monkeypatch.setenv("KNEESCOPE_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return weights_dir


@pytest.fixture(scope="module")
def sagittal_engine(weights_dir):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KNEESCOPE_WEIGHTS_DIR", str(weights_dir))
        return Engine.load("goyal-sagittal", inference=CPU, download=False)


def dice(a: np.ndarray, b: np.ndarray, value: int) -> float:
    total = np.count_nonzero(a == value) + np.count_nonzero(b == value)
    return 2.0 * np.count_nonzero((a == value) & (b == value)) / total if total else 1.0


def test_published_layout_resolves_from_the_cache(cache):
    resolved = resolve_model("goyal-staple", download=False)
    assert resolved.origin == "hub-cache" and resolved.revision == FAKE_COMMIT
    assert [p.name for p in resolved.checkpoints] == [
        "sagittal_best_model.h5",
        "coronal_best_model.h5",
        "axial_best_model.h5",
    ]
    info = resolved.describe()
    assert info["repo_id"] == "aagatti/dosma_bones" and not info["revision_pinned_in_manifest"]
    assert info["checkpoints"]["sagittal_best_model.h5"] == sha256_file(resolved.checkpoints[0])


def test_a_truncated_or_wrong_file_is_reported_before_loading(cache, tmp_path, monkeypatch):
    broken = tmp_path / "cache"
    write_standin_cache(broken)
    monkeypatch.setenv("KNEESCOPE_WEIGHTS_DIR", str(broken))
    path = broken / REPO_FOLDER / "snapshots" / FAKE_COMMIT / "coronal_best_model.h5"
    path.write_bytes(path.read_bytes()[:4000])
    with pytest.raises(WeightsUnavailableError, match=r"coronal_best_model.h5 is corrupt or truncated") as caught:
        resolve_model("goyal-coronal", download=False)
    assert "python -m pipeline weights download goyal-coronal" in str(caught.value)
    path.write_text("<html>rate limited</html>")
    with pytest.raises(WeightsUnavailableError, match="corrupt or truncated"):
        resolve_model("goyal-coronal", download=False)


def test_engine_segments_a_knee_with_canonical_labels_and_provenance(sagittal_engine):
    truth, image = standin_knee(orientation="coronal")
    reports: list[tuple[float, str]] = []
    segmentation = sagittal_engine.segment(image, progress=lambda f, m: reports.append((f, m)))
    labels = segmentation.labels
    assert labels.array.dtype == np.uint8 and not labels.same_grid(image)
    for structure, minimum in MIN_DICE.items():
        value = L.CANONICAL[structure]
        assert dice(labels.array, truth.array, value) > minimum, structure
    provenance = segmentation.provenance
    assert provenance["model"] == "goyal-sagittal" and provenance["engine_model"] == "goyal-sagittal"
    assert provenance["revision"] == FAKE_COMMIT and provenance["device"] == "cpu"
    (plane,) = provenance["planes"]
    assert plane["plane"] == "sagittal" and plane["model_input"] == [1, 128, 128] and plane["channels_first"]
    assert plane["sha256"] == provenance["checkpoints"]["Goyal_Bone_Cart_July_2024_best_model.h5"]
    assert plane["keras"]["config_dialect"] == "keras2" and plane["keras"]["keras_version"].startswith("2.")
    assert sum("sagittal: slices" in m for _, m in reports) == plane["batches"] > 1  # one report per batch
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_a_cpu_segmentation_leaves_no_arrays_in_cycles(sagittal_engine):
    """As for nnU-Net (tests/pipeline/segmentation/test_segmenter.py): nothing for a full collection to free."""
    _, image = standin_knee()
    segmentation, held = arrays_left_in_cycles(lambda: sagittal_engine.segment(image))
    assert segmentation.labels.array.any()
    assert held == []


def test_a_raising_progress_callback_cancels_and_the_engine_stays_usable(sagittal_engine):
    _, image = standin_knee(orientation="coronal")

    class Cancelled(Exception):
        pass

    calls = []

    def cancel_on_second_batch(fraction: float, message: str) -> None:
        calls.append(message)
        if sum("slices" in m for m in calls) == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        sagittal_engine.segment(image, progress=cancel_on_second_batch)
    assert sagittal_engine.segment(image).labels.array.any()


@pytest.mark.slow
def test_staple_fuses_three_planes(cache):
    engine = Engine.load("goyal-staple", inference=CPU, download=False)
    truth, image = standin_knee(orientation="sagittal")
    segmentation = engine.segment(image)
    provenance = segmentation.provenance
    assert [p["plane"] for p in provenance["planes"]] == ["sagittal", "coronal", "axial"]
    assert [p["model_input"] for p in provenance["planes"]] == [[1, 128, 128], [1, 64, 128], [1, 64, 128]]
    assert provenance["fusion"]["method"] == "SimpleITK MultiLabelSTAPLE"
    assert provenance["fusion"]["excluded_native_labels"] == {"sagittal": [], "coronal": [1], "axial": [3, 4, 5, 6]}
    for structure, minimum in MIN_DICE.items():
        assert dice(segmentation.labels.array, truth.array, L.CANONICAL[structure]) > minimum, structure
    assert "STAPLE" in engine.describe()


def test_cpu_backends_label_as_pytorch_does(cache):
    """Six real slices (two batches of four, the second padded for the fixed-shape graphs) on every backend."""
    from pipeline.segmentation.devices import select_device
    from pipeline.segmentation.goyal.plane_model import load_plane_model
    from pipeline.segmentation.goyal.plane_path import prepare_slices

    _, image = standin_knee(orientation="coronal")
    path = resolve_model("goyal-sagittal", download=False).checkpoints[0]
    models = {
        backend: load_plane_model(path, "sagittal", CPU.with_changes(backend=backend), select_device("cpu"))
        for backend in ("torch", "onnx", "openvino")
    }
    x, _ = prepare_slices(image.array, image.direction, models["torch"].layout, models["torch"].io.size)
    middle = x[len(x) // 2 - 3 : len(x) // 2 + 3]
    labels = {}
    for backend, model in models.items():
        assert model.backend["backend"] == backend and not model.backend.get("fallback")
        batches = [model.run_batch(model.io.batch(middle[i : i + 4])) for i in (0, 4)]
        labels[backend] = model.io.labels(np.concatenate(batches))
    assert labels["torch"].shape == (6, 128, 128) and len(np.unique(labels["torch"])) >= 5
    for backend in ("onnx", "openvino"):
        assert float(np.mean(labels[backend] == labels["torch"])) >= 0.999, backend


@pytest.mark.gpu
def test_cuda_labels_as_the_cpu_does(cache):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    _, image = standin_knee(orientation="coronal")
    cpu = Engine.load("goyal-sagittal", inference=CPU, download=False)
    gpu = Engine.load("goyal-sagittal", inference=InferenceOptions(device="cuda"), download=False)
    segmentation = gpu.segment(image)
    assert segmentation.provenance["device"].startswith("cuda")
    assert segmentation.provenance["planes"][0]["batch_size"] == 16
    assert float(np.mean(segmentation.labels.array == cpu.segment(image).labels.array)) >= 0.999
