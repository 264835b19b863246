"""A Keras model graph (``keras_h5``) as one PyTorch module that computes the same function.

The module holds one PyTorch layer per Keras layer (``keras_layers``) and runs the saved graph's calls in order,
keeping every intermediate tensor in the layout Keras had it. An unsupported layer type is refused at build time,
named, with the supported vocabulary; nothing falls back silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .keras_h5 import KerasFormatError, KerasModel, TensorRef, read_keras_h5
from .keras_layers import LAYER_BUILDERS, supported_layer_types


@dataclass(frozen=True)
class Step:
    """One layer call: module index, the slots its inputs are in, the slot its output goes to."""

    module: int
    inputs: tuple[int, ...]
    output: int


class KerasNetwork(nn.Module):
    """A Keras model in PyTorch (inference only; parameters are frozen).

    ``forward(*inputs)`` takes the model's inputs in the Keras layout and returns its single output, or a tuple
    when the model has several.
    """

    def __init__(self, model: KerasModel):
        super().__init__()
        layers = model.layers.values()
        unsupported = sorted({f"'{x.name}' ({x.class_name})" for x in layers if _unsupported(x.class_name)})
        if unsupported:
            raise KerasFormatError(
                f"The Keras model '{model.name}' uses layers KneeScope cannot run: {', '.join(unsupported)}. "
                f"Supported layer types: {', '.join(supported_layer_types())}."
            )
        slots: dict[TensorRef, int] = {ref: i for i, ref in enumerate(model.inputs)}
        modules: list[nn.Module] = []
        index_of: dict[str, int] = {}
        steps: list[Step] = []
        for call in model.calls:
            layer = model.layers[call.layer]
            if layer.class_name == "InputLayer":
                continue
            if call.layer not in index_of:  # a shared layer is built once and called several times
                index_of[call.layer] = len(modules)
                modules.append(LAYER_BUILDERS[layer.class_name](layer))
            inputs = tuple(slots[ref] for ref in call.inputs)
            slots[call.output] = len(slots)
            steps.append(Step(index_of[call.layer], inputs, slots[call.output]))
        self.layers = nn.ModuleList(modules)
        self.layer_names = tuple(index_of)
        self.steps = tuple(steps)
        self.n_inputs = len(model.inputs)
        self.n_slots = len(slots)
        self.output_slots = tuple(slots[ref] for ref in model.outputs)
        self.eval()
        self.requires_grad_(False)

    def forward(self, *inputs: torch.Tensor):
        values: list[torch.Tensor | None] = [None] * self.n_slots
        values[: self.n_inputs] = inputs
        for step in self.steps:
            args = [values[i] for i in step.inputs]
            values[step.output] = self.layers[step.module](*args)
        outputs = tuple(values[i] for i in self.output_slots)
        return outputs[0] if len(outputs) == 1 else outputs


def _unsupported(class_name: str) -> bool:
    return class_name != "InputLayer" and class_name not in LAYER_BUILDERS


def load_keras_network(path: str | Path) -> tuple[KerasNetwork, KerasModel]:
    """The PyTorch network of a Keras full-model .h5 file, and the graph it was built from (weights dropped)."""
    model = read_keras_h5(path)
    network = KerasNetwork(model)
    return network, model
