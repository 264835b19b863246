"""Inference backends: every backend available here labels a synthetic knee as PyTorch eager fp32 does (demo model,
Dice >= 0.995 per structure), the graph is exported once per checkpoint, 'auto' measures once and records its
choice, and a backend that cannot load falls back to eager with a warning instead of failing.

The synthetic knee is rendered at the demo model's own 1 mm grid so that nnU-Net resamples nothing and each
prediction takes about a second. The reference is eager fp32 on the same image (not the phantom's truth: the
question is whether the backends change the segmentation, not how good the demo model is).
"""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest

from pipeline import segmentation as segment
from pipeline import weights
from pipeline.config import InferenceOptions
from pipeline.segmentation import backends
from pipeline.segmentation.tiles import knee_box, tiles_needed
from pipeline.synthetic import PhantomSpec, make_phantom, render_mr

MIN_DICE = 0.995
STRUCTURES = range(1, 10)


@pytest.fixture(autouse=True)
def export_dir(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.getbasetemp() / "backend-exports"  # shared by this module: export once
    monkeypatch.setenv(backends.EXPORT_DIR_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def knee():
    knee = make_phantom(PhantomSpec(side="right", spacing=(1.0, 1.0, 1.0)))
    return knee, render_mr(knee.labels, seed=7)


@pytest.fixture(scope="module")
def demo():
    return weights.resolve_model("demo")


def _segment(demo, image, **options):
    segmenter = segment.Segmenter.from_model(demo, options=InferenceOptions(device="cpu", **options))
    return segmenter.predict(image)


@pytest.fixture(scope="module")
def eager(demo, knee, tmp_path_factory):
    return _segment(demo, knee[1], backend="torch", precision="fp32").labels.array


def _min_dice(reference: np.ndarray, other: np.ndarray) -> float:
    dice = backends.agreement.dice_per_label(reference, other, list(STRUCTURES))
    return min(dice.values())


def _available() -> list[tuple[str, str]]:
    pairs = [("torch", "fp32"), ("onnx", "fp32"), ("openvino", "fp32")]
    if backends.has_native_bf16():
        pairs += [("torch", "bf16"), ("openvino", "bf16")]
    return pairs


@pytest.mark.parametrize(("backend", "precision"), _available())
def test_backend_labels_match_eager(demo, knee, eager, backend, precision):
    result = _segment(demo, knee[1], backend=backend, precision=precision)
    info = result.provenance["inference_backend"][0]
    assert (info["backend"], info["precision"]) == (backend, precision)
    assert "fallback" not in info
    assert _min_dice(eager, result.labels.array) >= MIN_DICE
    # and the demo model still finds the knee (the comparison is not between two empty maps)
    truth = backends.agreement.dice_per_label(knee[0].labels.array, eager, list(STRUCTURES))
    assert np.mean(list(truth.values())) > 0.8


def test_export_once_per_checkpoint_and_auto_remembers(demo, knee, eager, export_dir):
    first = _segment(demo, knee[1], backend="auto")
    again = _segment(demo, knee[1], backend="auto")
    info, info_again = first.provenance["inference_backend"][0], again.provenance["inference_backend"][0]
    sha = next(iter(demo.describe()["checkpoints"].values()))
    graphs = list(export_dir.glob("*.onnx"))
    assert len(graphs) == 1 and sha[:16] in graphs[0].name  # keyed by the checkpoint's checksum
    assert info_again["selection"]["from_cache"] is True
    assert (info_again["backend"], info_again["precision"]) == (info["backend"], info["precision"])
    assert info["requested"] == {"backend": "auto", "precision": "auto"}
    candidates = info["selection"]["candidates"]
    assert candidates[0] == {
        "backend": "torch",
        "precision": "fp32",
        "seconds": candidates[0]["seconds"],
        "agrees": True,
    }
    chosen = next(c for c in candidates if (c["backend"], c["precision"]) == (info["backend"], info["precision"]))
    assert chosen["agrees"] and chosen["seconds"] == min(c["seconds"] for c in candidates if c.get("agrees"))
    measured = json.loads(next(export_dir.glob("auto-*.json")).read_text())
    assert measured["chosen"] == {"backend": info["backend"], "precision": info["precision"]}
    if info["backend"] in ("onnx", "openvino"):
        assert info_again["export"]["exported_now"] is False
    assert _min_dice(eager, first.labels.array) >= MIN_DICE


def test_missing_package_falls_back_to_eager(demo, knee, eager, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with caplog.at_level(logging.WARNING, logger="pipeline.segmentation.backends"):
        result = _segment(demo, knee[1], backend="onnx")
    info = result.provenance["inference_backend"][0]
    assert info["backend"] == "torch" and info["requested"]["backend"] == "onnx"
    assert "onnxruntime is not installed" in info["fallback"]
    assert any("Using PyTorch eager fp32 instead" in r.getMessage() for r in caplog.records)
    assert np.array_equal(result.labels.array, eager)


def test_cpu_without_bf16_falls_back(demo, knee, eager, monkeypatch, caplog):
    from pipeline.segmentation.backends import runners

    monkeypatch.setattr(runners, "has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="pipeline.segmentation.backends"):
        result = _segment(demo, knee[1], backend="openvino", precision="bf16")
    info = result.provenance["inference_backend"][0]
    assert info["backend"] == "torch" and "no native bf16" in info["fallback"]
    assert np.array_equal(result.labels.array, eager)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend must be one of auto, torch, onnx, openvino"):
        InferenceOptions(backend="tensorrt")
    with pytest.raises(ValueError, match="precision must be one of"):
        InferenceOptions(precision="int4")


def test_cli_backend_options():
    import argparse

    from pipeline.cli.analyze import add_model_options, inference_options

    parser = argparse.ArgumentParser()
    add_model_options(parser)
    options = inference_options(parser.parse_args(["--backend", "openvino", "--precision", "bf16"]))
    assert (options.backend, options.precision, options.skip_empty_tiles) == ("openvino", "bf16", False)
    assert inference_options(parser.parse_args([])).backend == "auto"


# --- tiles outside the knee ---------------------------------------------------------------------------------------
def _leg_in_air(shape=(60, 90, 90)) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = np.abs(rng.normal(0, 5, shape)).astype(np.float32)  # air: noise only
    image[10:50, 10:40, 15:45] += 300.0  # the leg, in one corner of the field of view
    return image


def test_knee_box_finds_the_bright_piece():
    box = knee_box(_leg_in_air(), spacing=(1.0, 1.0, 1.0), margin_mm=4.0)
    assert box is not None
    # 2x subsampling rounds the leg's edges to even voxels; then the 4 mm margin
    np.testing.assert_array_equal(box[0], [6, 6, 12])
    np.testing.assert_array_equal(box[1], [54, 44, 50])
    assert knee_box(np.zeros((20, 20, 20), np.float32), spacing=(1, 1, 1)) is None


def test_tiles_wholly_outside_the_box_are_skipped():
    box = np.array([[6, 6, 11], [54, 44, 49]])
    slicers = [(slice(None), slice(0, 32), slice(y, y + 32), slice(x, x + 32)) for y in (0, 29, 58) for x in (0, 58)]
    needed = tiles_needed(slicers, (60, 90, 90), (60, 90, 90), box)
    assert needed == [True, False, True, False, False, False]
    # an image smaller than the patch is padded (2 voxels below here): the box moves with it
    along_k = [(slice(None), slice(k, k + 32), slice(0, 90), slice(0, 90)) for k in (0, 32)]
    assert tiles_needed(along_k, (64, 90, 90), (60, 90, 90), np.array([[31, 0, 0], [40, 90, 90]])) == [False, True]


def test_skip_empty_tiles_on_a_leg_in_air(demo):
    from pipeline.volume import Volume

    image = Volume(_leg_in_air((100, 200, 200)), (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3))
    segmenter = segment.Segmenter.from_model(
        demo, options=InferenceOptions(device="cpu", backend="torch", skip_empty_tiles=True), require_knee=False
    )
    result = segmenter.predict(image)
    tiles, skipped = result.provenance["sliding_window_tiles"][0], result.provenance["tiles_skipped"][0]
    assert result.provenance["skip_empty_tiles"] is True
    # 2 x 4 x 4 tiles of 80 mm; the leg's box (plus 10 mm) touches 2 x 2 x 2 of them. Of the other 24, the first is
    # run (the network's answer for air) and 23 reuse it.
    assert (tiles, skipped) == (32, 23)
