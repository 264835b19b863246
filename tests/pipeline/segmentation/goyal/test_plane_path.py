"""The whole Goyal volume path against a straightforward reference written here the way upstream (DOSMA) does it.

The reference shares nothing with ``pipeline.segmentation.goyal`` but the network: SimpleITK's ``DICOMOrient`` puts
the image in DOSMA's sagittal orientation (SI, AP, LR) and back, one whole-volume ``skimage.transform.resize`` does
each resampling, scipy labels and fills over the whole volume, and a dict maps native to canonical labels. The
network is the test stand-in (trained on synthetic knees by real Keras); its PyTorch rebuild is checked against Keras
separately (test_keras_torch). Acceptance (issue 22): >= 99.9 % of voxels agree, on a knee stored coronally.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pipeline.config import InferenceOptions  # noqa: E402
from pipeline.segmentation.goyal.preprocess import model_input_image, resize_slices  # noqa: E402
from pipeline.segmentation.goyal.segmenter import GoyalSegmenter  # noqa: E402
from pipeline.volume import Volume  # noqa: E402
from tests.fixtures.goyal import STANDIN_INFO, standin_file, standin_knee  # noqa: E402

requires_standin = pytest.mark.skipif(not STANDIN_INFO, reason="the Goyal stand-in (tests/data/goyal/standin) absent")

NATIVE_TO_CANONICAL = {1: 7, 2: 4, 3: 5, 4: 6, 5: 8, 6: 9, 7: 1, 8: 2, 9: 3}


def reference_segmentation(image: Volume, network, size: tuple[int, int]) -> np.ndarray:
    """``network`` maps a (n, 1, x, y) float32 batch to class probabilities (n, 10, x, y)."""
    # Upstream's steps, plainly: reorient, resize, whiten, predict, argmax, resize back, largest piece, bone holes.
    import SimpleITK as sitk
    from scipy import ndimage
    from skimage.transform import resize

    itk = image.to_sitk()
    original_code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(itk.GetDirection())
    sagittal = sitk.DICOMOrient(itk, "RPI")  # i -> right, j -> posterior, k -> inferior: array (SI, AP, LR)
    vol = sitk.GetArrayFromImage(sagittal).astype(np.float32)
    vol = resize(vol, (*size, vol.shape[-1]), order=3)
    vol = (vol - np.mean(vol)) / (np.std(vol) + 1e-8)
    batch = np.expand_dims(np.transpose(vol, (2, 0, 1)), 1).astype(np.float32)  # (slice, 1, x, y)
    probabilities = np.concatenate([network(batch[i : i + 4]) for i in range(0, len(batch), 4)])
    mask = np.transpose(np.argmax(probabilities, axis=1), (1, 2, 0))
    mask = resize(mask, sitk.GetArrayFromImage(sagittal).shape, order=0)
    cleaned = np.zeros_like(mask)
    for value in np.unique(mask):
        if value == 0:
            continue
        pieces, _ = ndimage.label(mask == value)
        sizes = np.bincount(pieces.ravel())
        sizes[0] = 0
        cleaned[pieces == np.argmax(sizes)] = value
    for bone in (7, 8, 9):
        cleaned[ndimage.binary_fill_holes(cleaned == bone)] = bone
    canonical = np.zeros(cleaned.shape, dtype=np.uint8)
    for native, value in NATIVE_TO_CANONICAL.items():
        canonical[cleaned == native] = value
    back = sitk.GetImageFromArray(canonical)
    back.CopyInformation(sagittal)
    return sitk.GetArrayFromImage(sitk.DICOMOrient(back, original_code))


@requires_standin
@pytest.mark.parametrize("orientation", ["coronal", "axial"])
def test_volume_path_matches_the_reference(orientation):
    _, image = standin_knee(orientation=orientation)
    # OpenVINO fp32 runs the network for both sides (it equals PyTorch eager to 1e-6, test_segmenter), much faster.
    options = InferenceOptions(device="cpu", backend="openvino", precision="fp32")
    segmenter = GoyalSegmenter.from_files([("sagittal", standin_file())], options=options, require_knee=False)
    (plane,) = segmenter.planes
    expected = reference_segmentation(image, plane.run_batch, plane.io.size)
    got = segmenter.predict(image).labels.array
    assert got.shape == expected.shape == image.array.shape
    agreement = float(np.mean(got == expected))
    assert agreement >= 0.999, f"{agreement:.5f} of voxels agree"
    assert len(np.unique(expected)) >= 6, "the stand-in finds the knee's structures (the comparison means something)"


def test_slice_by_slice_resize_equals_upstreams_whole_volume_resize():
    from skimage.transform import resize

    rng = np.random.default_rng(1)
    stack = rng.gamma(2.0, 50.0, (7, 33, 41)).astype(np.float32)
    for size in ((64, 80), (20, 30)):  # up- and down-sampling (anti-aliasing on)
        ours = resize_slices(stack, size, order=3)
        whole = resize(stack.transpose(1, 2, 0), (*size, 7), order=3).transpose(2, 0, 1)
        assert float(np.abs(ours - whole).max()) < 1e-4 * float(stack.max())
    labels = rng.integers(0, 10, (7, 33, 41)).astype(np.uint8)
    whole = resize(labels.transpose(1, 2, 0), (64, 80, 7), order=0).transpose(2, 0, 1)
    assert np.array_equal(resize_slices(labels, (64, 80), order=0), whole)


def test_model_input_is_the_root_sum_of_squares_of_the_echoes():
    def volume(value: float, **kwargs) -> Volume:
        return Volume(np.full((2, 3, 4), value, np.float32), (1, 1, 1), (0, 0, 0), np.eye(3), **kwargs)

    echoes = tuple(types.SimpleNamespace(volume=volume(v)) for v in (3.0, 4.0))
    by_hand = volume(3.0, source=types.SimpleNamespace(echoes=echoes))  # echo 1 with its echoes, not combined
    assert np.allclose(model_input_image(by_hand), 5.0)
    read = volume(5.0, meta={"combined": "root-sum-of-squares of echoes"}, source=types.SimpleNamespace(echoes=echoes))
    assert np.allclose(model_input_image(read), 5.0)
    assert np.allclose(model_input_image(volume(7.0)), 7.0)


def test_model_io_reads_the_saved_input_shape():
    from pipeline.errors import WeightsUnavailableError
    from pipeline.segmentation.goyal.plane_path import ModelIO
    from pipeline.segmentation.goyal.planes import PLANES

    sagittal, coronal = PLANES["sagittal"], PLANES["coronal"]
    assert ModelIO.from_input_shape((1, 512, 512), sagittal, "m") == ModelIO((512, 512), True)
    assert ModelIO.from_input_shape((1, None, None), coronal, "m") == ModelIO((160, 512), True)  # published size
    assert ModelIO.from_input_shape((96, 64, 1), sagittal, "m") == ModelIO((96, 64), False)
    with pytest.raises(WeightsUnavailableError, match=r"input shape \[3, 64, 64\]"):
        ModelIO.from_input_shape((3, 64, 64), sagittal, "m")
    io = ModelIO((4, 5), True)
    probabilities = np.zeros((2, 10, 4, 5), np.float32)
    probabilities[:, 7] = 1.0
    assert np.all(io.labels(probabilities) == 7)
    assert np.all(io.labels(probabilities.transpose(0, 2, 3, 1)) == 7)  # a model that permutes its output
    with pytest.raises(WeightsUnavailableError, match="10 classes per pixel"):
        io.labels(np.zeros((2, 4, 4, 5), np.float32))
