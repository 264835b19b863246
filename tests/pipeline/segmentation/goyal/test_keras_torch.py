"""The Keras HDF5 loader against real Keras: fixtures saved and evaluated by TensorFlow 2.21 / tf-keras and Keras 3
(``bench/goyal_reference.py fixtures``), so these tests need no TensorFlow. Acceptance (issue 22): softmax within
1e-4 (max |difference|, fp32) and the argmax on >= 99.99 % of pixels."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")

from pipeline.errors import WeightsUnavailableError  # noqa: E402
from pipeline.segmentation.goyal.keras_h5 import KerasFormatError, parse_model_config, read_keras_h5  # noqa: E402
from pipeline.segmentation.goyal.keras_torch import KerasNetwork, load_keras_network  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[3] / "data" / "goyal"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())
MAX_ABS = 1e-4
MIN_ARGMAX = 0.9999


@pytest.mark.parametrize("name", sorted(REFERENCE["fixtures"]))
def test_pytorch_reproduces_keras(name):
    record = REFERENCE["fixtures"][name]
    path = FIXTURES / record["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"], "fixture changed without regenerating"
    data = np.load(FIXTURES / f"{name}.npz")
    network, model = load_keras_network(path)
    with torch.no_grad():
        out = network(torch.from_numpy(data["inputs"])).numpy()
    expected = data["outputs"]
    assert out.shape == expected.shape
    assert float(np.abs(out - expected).max()) < MAX_ABS
    class_axis = 1 if name.endswith("_cf") else -1
    assert float(np.mean(out.argmax(class_axis) == expected.argmax(class_axis))) >= MIN_ARGMAX
    assert model.parameter_count == record["parameters"]
    assert model.dialect == ("keras3" if record["saved_by"] == "keras3" else "keras2")


def test_channels_first_family_is_read_as_saved():
    model = read_keras_h5(FIXTURES / "unet_transpose_cf.h5")
    assert model.input_shapes == ((1, 48, 80),)
    assert model.layer_types()["Conv2DTranspose"] == 2
    assert model.versions["keras_version"].startswith("2.")
    bn = model.layers["down0_bn"]
    assert set(bn.weights) == {"gamma", "beta", "moving_mean", "moving_variance"}
    assert bn.config["epsilon"] == pytest.approx(1e-3)


def _config(*layers) -> dict:
    return {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "layers": [
                {"class_name": "InputLayer", "name": "in", "config": {"batch_input_shape": [None, 4, 4, 1]}},
                *layers,
            ],
            "input_layers": [["in", 0, 0]],
            "output_layers": [[layers[-1]["name"], 0, 0]],
        },
    }


def _layer(name: str, class_name: str, inbound: str, **config) -> dict:
    return {"class_name": class_name, "name": name, "config": config, "inbound_nodes": [[[inbound, 0, 0, {}]]]}


def test_an_unsupported_layer_is_refused_by_type():
    config = _config(_layer("custom", "Lambda", "in", function="lambda x: x"))
    with pytest.raises(KerasFormatError, match=r"'custom' \(Lambda\)") as caught:
        KerasNetwork(parse_model_config(config, {}))
    assert "Supported layer types" in str(caught.value) and "Conv2DTranspose" in str(caught.value)


def test_an_unsupported_activation_is_refused_by_name():
    config = _config(_layer("act", "Activation", "in", activation="mish"))
    with pytest.raises(KerasFormatError, match="activation 'mish'"):
        KerasNetwork(parse_model_config(config, {}))


def test_a_nested_model_is_refused():
    config = _config(_layer("inner", "Functional", "in", layers=[]))
    with pytest.raises(KerasFormatError, match="nested model"):
        parse_model_config(config, {})


def test_a_shared_layer_runs_once_per_call():
    """Keras 2 records a layer called twice as two inbound nodes; both calls use the same weights."""
    kernel = np.full((1, 1, 1, 1), 2.0, np.float32)
    conv = {
        "class_name": "Conv2D",
        "name": "double",
        "config": {"kernel_size": [1, 1], "strides": [1, 1], "padding": "valid", "use_bias": False},
        "inbound_nodes": [[["in", 0, 0, {}]], [["double", 0, 0, {}]]],
    }
    config = _config(conv)
    config["config"]["output_layers"] = [["double", 1, 0]]
    network = KerasNetwork(parse_model_config(config, {"double": {"kernel": kernel}}))
    x = torch.ones(1, 4, 4, 1)
    assert torch.equal(network(x), torch.full((1, 4, 4, 1), 4.0))


def test_weights_only_and_non_hdf5_files_are_named(tmp_path):
    weights_only = tmp_path / "weights.h5"
    with h5py.File(weights_only, "w") as handle:
        handle.create_group("conv").create_dataset("kernel:0", data=np.zeros((3, 3, 1, 1)))
    with pytest.raises(WeightsUnavailableError, match="save_weights, not as a full model"):
        read_keras_h5(weights_only)
    html = tmp_path / "model.h5"
    html.write_text("<html>Access denied</html>")
    with pytest.raises(WeightsUnavailableError, match="not an HDF5 file"):
        read_keras_h5(html)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes((FIXTURES / "sequential_cl.h5").read_bytes()[:5000])
    with pytest.raises(WeightsUnavailableError, match="corrupt or truncated"):
        read_keras_h5(truncated)
