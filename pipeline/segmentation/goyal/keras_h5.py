"""Reading a Keras full-model HDF5 file (``model.save("x.h5")``) with h5py alone: the layer graph and its weights.

A full-model file holds the architecture as JSON in the root attribute ``model_config`` and the weights under
``model_weights/<layer name>/``, listed per layer by the attribute ``weight_names``. Two dialects exist:

- **Keras 2** (tf.keras 2.x, what the published Goyal 2024 files were saved with): a layer's ``inbound_nodes`` is a
  list of calls, each a list of ``[layer, node_index, tensor_index, kwargs]``; weight names look like
  ``conv2d/kernel:0``.
- **Keras 3** (``keras.saving`` legacy HDF5): a call is ``{"args": [...], "kwargs": {...}}`` whose tensors are
  ``{"class_name": "__keras_tensor__", "config": {"keras_history": [layer, node_index, tensor_index]}}``;
  weight names look like ``conv2d/kernel``.

Both come out as the same :class:`KerasModel`: layers in the order they run, each call's inputs named by
:class:`TensorRef`, weights as numpy arrays keyed by their short name (``kernel``, ``bias``, ``gamma``,
``moving_mean``, ...). Nothing here imports torch, TensorFlow or Keras; ``keras_torch`` builds the network.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ...errors import WeightsUnavailableError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Layer classes that are whole models: a model nested inside another is not supported.
_MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})


class KerasFormatError(WeightsUnavailableError):
    """The file is not a Keras full-model HDF5 file this reader understands (the message says why)."""


@dataclass(frozen=True)
class TensorRef:
    """One tensor of the graph: output ``index`` of call ``node`` of layer ``layer``."""

    layer: str
    node: int = 0
    index: int = 0


@dataclass(frozen=True)
class LayerCall:
    """One call of a layer (a shared layer has several): its input tensors in argument order."""

    layer: str
    node: int
    inputs: tuple[TensorRef, ...]

    @property
    def output(self) -> TensorRef:
        return TensorRef(self.layer, self.node, 0)


@dataclass(frozen=True)
class KerasLayer:
    """A layer: its Keras class, its config (as saved) and its weights by short name."""

    name: str
    class_name: str
    config: Mapping[str, Any]
    weights: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class KerasModel:
    """The layer graph of a saved model, ready to be built in another framework.

    Attributes:
        layers: every layer by name.
        calls: every layer call in an order where inputs come before their users.
        inputs, outputs: the model's input and output tensors.
        input_shapes: per input, the saved shape without the batch axis (None for a free axis).
        dialect: 'keras2' or 'keras3'.
        versions: what the file records (keras_version, backend).
    """

    name: str
    layers: Mapping[str, KerasLayer]
    calls: tuple[LayerCall, ...]
    inputs: tuple[TensorRef, ...]
    outputs: tuple[TensorRef, ...]
    input_shapes: tuple[tuple[int | None, ...], ...]
    dialect: str
    versions: Mapping[str, str]

    @property
    def parameter_count(self) -> int:
        return int(sum(w.size for layer in self.layers.values() for w in layer.weights.values()))

    def layer_types(self) -> dict[str, int]:
        """How many layers of each Keras class (provenance)."""
        counts: dict[str, int] = {}
        for layer in self.layers.values():
            counts[layer.class_name] = counts.get(layer.class_name, 0) + 1
        return dict(sorted(counts.items()))


def read_keras_h5(path: str | Path) -> KerasModel:
    """Read a Keras full-model .h5 file.

    Raises:
        KerasFormatError: not HDF5, no model configuration (a weights-only file), a nested model, or an
            inconsistent graph; the message names the file and what is wrong.
    """
    import h5py

    path = Path(path)
    if not is_hdf5(path):
        raise KerasFormatError(f"{path} is not an HDF5 file (a Keras .h5 model); it is truncated or not a model.")
    try:
        with h5py.File(path, "r") as handle:
            if "model_config" not in handle.attrs:
                raise KerasFormatError(
                    f"{path} holds no model configuration (it was saved with save_weights, not as a full model); "
                    "KneeScope needs the full model file (architecture + weights)."
                )
            config = json.loads(_text(handle.attrs["model_config"]))
            versions = {k: _text(handle.attrs[k]) for k in ("keras_version", "backend") if k in handle.attrs}
            if "model_weights" not in handle:
                raise KerasFormatError(f"{path} has a model configuration but no model_weights group.")
            weights = _read_weights(handle["model_weights"])
    except OSError as exc:
        raise KerasFormatError(f"{path} cannot be read as HDF5 ({exc}); the file is corrupt or truncated.") from exc
    return parse_model_config(config, weights, versions=versions, source=str(path))


def is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _read_weights(group) -> dict[str, dict[str, np.ndarray]]:
    """Layer name -> {short weight name: array}, in each layer's saved order."""
    out: dict[str, dict[str, np.ndarray]] = {}
    layer_names = [_text(n) for n in group.attrs.get("layer_names", list(group.keys()))]
    for layer_name in layer_names:
        if layer_name not in group:
            continue
        layer_group = group[layer_name]
        names = [_text(n) for n in layer_group.attrs.get("weight_names", [])]
        arrays: dict[str, np.ndarray] = {}
        for full_name in names:
            short = full_name.split("/")[-1].split(":")[0]
            if short in arrays:  # two weights with one short name (never in the supported layers)
                raise KerasFormatError(f"Layer '{layer_name}' has two weights named '{short}'.")
            arrays[short] = np.asarray(layer_group[full_name])
        out[layer_name] = arrays
    return out


# --- the model configuration -------------------------------------------------------------------------------------
def parse_model_config(
    config: Mapping[str, Any],
    weights: Mapping[str, Mapping[str, np.ndarray]],
    *,
    versions: Mapping[str, str] | None = None,
    source: str = "model",
) -> KerasModel:
    """The graph from a ``model_config`` JSON object (Functional/Model or Sequential, Keras 2 or 3)."""
    class_name = config.get("class_name")
    body = config.get("config") or {}
    raw_layers = body.get("layers") or []
    inputs_spec: Any
    outputs_spec: Any
    if class_name == "Sequential":
        raw_layers = _sequential_as_functional(raw_layers, source)
        inputs_spec, outputs_spec = [[raw_layers[0]["name"], 0, 0]], [[raw_layers[-1]["name"], 0, 0]]
    elif class_name in ("Functional", "Model"):
        inputs_spec, outputs_spec = body.get("input_layers"), body.get("output_layers")
    else:
        raise KerasFormatError(f"{source}: model class '{class_name}' is not supported (Functional or Sequential).")
    dialect = "keras3" if _is_keras3(raw_layers) else "keras2"
    layers: dict[str, KerasLayer] = {}
    calls: dict[TensorRef, LayerCall] = {}
    input_shapes: dict[str, tuple[int | None, ...]] = {}
    for raw in raw_layers:
        name, layer_class = raw["name"] if "name" in raw else raw["config"]["name"], raw["class_name"]
        if layer_class in _MODEL_CLASSES:
            raise KerasFormatError(f"{source}: layer '{name}' is a nested model ({layer_class}); not supported.")
        layer_config = raw.get("config") or {}
        layers[name] = KerasLayer(
            name, layer_class, MappingProxyType(dict(layer_config)), MappingProxyType(dict(weights.get(name, {})))
        )
        if layer_class == "InputLayer":
            shape = layer_config.get("batch_input_shape") or layer_config.get("batch_shape")
            if shape is None:
                raise KerasFormatError(f"{source}: input layer '{name}' records no shape.")
            input_shapes[name] = tuple(shape[1:])
            calls[TensorRef(name)] = LayerCall(name, 0, ())
            continue
        for node, inbound in enumerate(raw.get("inbound_nodes") or []):
            refs = _keras3_refs(inbound) if dialect == "keras3" else _keras2_refs(inbound)
            calls[TensorRef(name, node)] = LayerCall(name, node, refs)
    inputs = tuple(_flat_refs(inputs_spec))
    outputs = tuple(_flat_refs(outputs_spec))
    missing = [r for r in (*inputs, *outputs) if TensorRef(r.layer, r.node) not in calls]
    if missing:
        raise KerasFormatError(f"{source}: the model's inputs/outputs name unknown layers {missing}.")
    ordered = _topological(calls, outputs, source)
    return KerasModel(
        name=str(body.get("name", "model")),
        layers=MappingProxyType(layers),
        calls=tuple(ordered),
        inputs=inputs,
        outputs=outputs,
        input_shapes=tuple(input_shapes[r.layer] for r in inputs),
        dialect=dialect,
        versions=MappingProxyType(dict(versions or {})),
    )


def _sequential_as_functional(raw_layers: list, source: str) -> list:
    """A Sequential's layers as a chain of calls (an input layer added from the first layer's batch shape)."""
    if not raw_layers:
        raise KerasFormatError(f"{source}: the Sequential model has no layers.")
    chain = [dict(layer) for layer in raw_layers]
    first = chain[0]
    if first["class_name"] != "InputLayer":
        shape = first["config"].get("batch_input_shape") or first["config"].get("batch_shape")
        if shape is None:
            raise KerasFormatError(f"{source}: the Sequential model records no input shape.")
        chain.insert(0, {"class_name": "InputLayer", "name": "input", "config": {"batch_input_shape": shape}})
    for previous, layer in itertools.pairwise(chain):
        layer.setdefault("name", layer["config"]["name"])
        previous.setdefault("name", previous["config"]["name"])
        layer["inbound_nodes"] = [[[previous["name"], 0, 0, {}]]]
    return chain


def _is_keras3(raw_layers: list) -> bool:
    return any(
        isinstance(node, dict) for layer in raw_layers for node in (layer.get("inbound_nodes") or []) if node
    ) or any("module" in layer for layer in raw_layers)


def _keras2_refs(inbound: list) -> tuple[TensorRef, ...]:
    return tuple(TensorRef(str(t[0]), int(t[1]), int(t[2])) for t in inbound)


def _keras3_refs(inbound: Mapping[str, Any]) -> tuple[TensorRef, ...]:
    """Tensors among a Keras 3 call's positional arguments (a merge layer gets them as one list)."""
    return tuple(_tensors_in(inbound.get("args", [])))


def _tensors_in(value: Any) -> Iterable[TensorRef]:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        history = value["config"]["keras_history"]
        yield TensorRef(str(history[0]), int(history[1]), int(history[2]))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors_in(item)


def _flat_refs(spec: Any) -> list[TensorRef]:
    """``[[name, node, index], ...]`` (Keras 2, and Keras 3 with several) or ``[name, node, index]`` (Keras 3)."""
    if not spec:
        return []
    if isinstance(spec[0], str):
        return [TensorRef(str(spec[0]), int(spec[1]), int(spec[2]))]
    return [TensorRef(str(s[0]), int(s[1]), int(s[2])) for s in spec]


def _topological(calls: Mapping[TensorRef, LayerCall], outputs: tuple[TensorRef, ...], source: str) -> list[LayerCall]:
    """The calls the outputs depend on, each after its inputs (iterative depth-first search)."""
    ordered: list[LayerCall] = []
    done: set[TensorRef] = set()
    for output in outputs:
        stack: list[tuple[TensorRef, bool]] = [(TensorRef(output.layer, output.node), False)]
        visiting: set[TensorRef] = set()
        while stack:
            key, expanded = stack.pop()
            if key in done:
                continue
            if key not in calls:
                raise KerasFormatError(f"{source}: a layer reads from '{key.layer}' (call {key.node}), absent.")
            if expanded:
                visiting.discard(key)
                done.add(key)
                ordered.append(calls[key])
                continue
            if key in visiting:
                raise KerasFormatError(f"{source}: the layer graph has a cycle through '{key.layer}'.")
            visiting.add(key)
            stack.append((key, True))
            for ref in reversed(calls[key].inputs):
                parent = TensorRef(ref.layer, ref.node)
                if parent not in done:
                    stack.append((parent, False))
    return ordered
