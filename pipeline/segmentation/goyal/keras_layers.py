"""PyTorch modules that compute exactly what the Keras layers of the same name compute (inference only).

Each module works on the tensor layout Keras sees (``channels_first`` (N, C, H, W) or ``channels_last``
(N, H, W, C)), so axis arguments of BatchNormalization, Concatenate, Softmax, Reshape and Permute mean what they
meant in Keras. Spatial layers in ``channels_last`` permute to PyTorch's (N, C, H, W) and back around the operation.

Keras conventions reproduced here (TensorFlow's, which Keras 2 and 3 share):

- ``padding='same'`` pads ``max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)`` in total, the smaller half
  *before* (so a stride-2 3x3 convolution on an even size pads only after), unlike PyTorch's symmetric padding;
- a transposed convolution is the full transposed convolution cropped to Keras's output length, starting at the
  'same' padding of the forward convolution it inverts;
- max pooling with 'same' padding pads with -inf (padding never wins);
- a ``softmax`` activation (an ``activation=`` argument or an Activation layer) normalises over the **last** axis,
  whatever the data format; the Softmax layer over its ``axis``;
- BatchNormalization at inference is ``(x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta`` along
  its ``axis``, with the layer's own epsilon (Keras's default 1e-3, not PyTorch's 1e-5);
- dropout and noise layers are the identity at inference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .keras_h5 import KerasFormatError, KerasLayer

# --- activations ----------------------------------------------------------------------------------------------
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "elu": F.elu,
    "selu": F.selu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "swish": F.silu,
    "silu": F.silu,
    "exponential": torch.exp,
    "hard_sigmoid": lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0),  # Keras 2's piecewise-linear definition
    "relu6": lambda x: torch.clamp(x, 0.0, 6.0),
}


def activation(spec: Any, layer: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function for a Keras ``activation`` config value (a name; Keras 3 may wrap it in a dict)."""
    name = spec.get("config", {}).get("name", spec.get("class_name")) if isinstance(spec, dict) else spec
    name = "linear" if name in (None, "") else str(name)
    if name not in _ACTIVATIONS:
        raise KerasFormatError(
            f"Layer '{layer}' uses the activation '{name}', which is not supported "
            f"(supported: {', '.join(sorted(_ACTIVATIONS))})."
        )
    return _ACTIVATIONS[name]


# --- helpers ----------------------------------------------------------------------------------------------------
def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    a, b = value
    return int(a), int(b)


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one axis: (before, after)."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def transposed_length(size: int, kernel: int, stride: int, padding: str, output_padding: int | None, dilation: int):
    """Keras's output length of a transposed convolution (``conv_utils.deconv_output_length``)."""
    effective = kernel + (kernel - 1) * (dilation - 1)
    if output_padding is None:
        if padding == "same":
            return size * stride
        return size * stride + max(effective - stride, 0)
    pad = effective // 2 if padding == "same" else 0
    return (size - 1) * stride + effective - 2 * pad + output_padding


def _data_format(config: Mapping[str, Any]) -> str:
    return str(config.get("data_format") or "channels_last")


def _to_nchw(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.permute(0, 3, 1, 2) if channels_last else x


def _from_nchw(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.permute(0, 2, 3, 1) if channels_last else x


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _weight(layer: KerasLayer, name: str) -> np.ndarray:
    if name not in layer.weights:
        raise KerasFormatError(
            f"Layer '{layer.name}' ({layer.class_name}) has no weight '{name}' in the file "
            f"(found: {', '.join(layer.weights) or 'none'})."
        )
    return layer.weights[name]


def _keras_axis(axis: int, ndim: int) -> int:
    return axis if axis >= 0 else ndim + axis


# --- layers -----------------------------------------------------------------------------------------------------
class Conv2D(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        c = layer.config
        self.channels_last = _data_format(c) == "channels_last"
        self.kernel, self.stride = _pair(c["kernel_size"]), _pair(c["strides"])
        self.dilation = _pair(c.get("dilation_rate", 1))
        self.groups = int(c.get("groups", 1))
        self.same = c["padding"] == "same"
        if c["padding"] not in ("same", "valid"):
            raise KerasFormatError(f"Layer '{layer.name}': Conv2D padding '{c['padding']}' is not supported.")
        # Keras kernel (kh, kw, in/groups, out) -> PyTorch (out, in/groups, kh, kw)
        self.weight = nn.Parameter(_tensor(_weight(layer, "kernel").transpose(3, 2, 0, 1)), requires_grad=False)
        bias = _weight(layer, "bias") if c.get("use_bias", True) else None
        self.bias = None if bias is None else nn.Parameter(_tensor(bias), requires_grad=False)
        self.act = activation(c.get("activation"), layer.name)
        # Odd kernels at stride 1 pad symmetrically: PyTorch's own padding argument then matches Keras exactly.
        self.symmetric = self.same and all(
            s == 1 and ((k - 1) * d) % 2 == 0 for k, s, d in zip(self.kernel, self.stride, self.dilation, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _to_nchw(x, self.channels_last)
        padding: Any = 0
        if self.symmetric:
            padding = tuple((k - 1) * d // 2 for k, d in zip(self.kernel, self.dilation, strict=True))
        elif self.same:
            (t, b), (left, r) = (
                same_padding(int(x.shape[2 + i]), self.kernel[i], self.stride[i], self.dilation[i]) for i in range(2)
            )
            x = F.pad(x, (left, r, t, b))
        y = F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)
        return self.act(_from_nchw(y, self.channels_last))


class Conv2DTranspose(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        c = layer.config
        self.channels_last = _data_format(c) == "channels_last"
        self.kernel, self.stride = _pair(c["kernel_size"]), _pair(c["strides"])
        self.dilation = _pair(c.get("dilation_rate", 1))
        self.padding = str(c["padding"])
        if self.padding not in ("same", "valid"):
            raise KerasFormatError(f"Layer '{layer.name}': Conv2DTranspose padding '{self.padding}' is not supported.")
        if int(c.get("groups", 1)) != 1:
            raise KerasFormatError(f"Layer '{layer.name}': grouped Conv2DTranspose is not supported.")
        op = c.get("output_padding")
        self.output_padding = None if op is None else _pair(op)
        # Keras kernel (kh, kw, out, in) -> PyTorch (in, out, kh, kw)
        self.weight = nn.Parameter(_tensor(_weight(layer, "kernel").transpose(3, 2, 0, 1)), requires_grad=False)
        bias = _weight(layer, "bias") if c.get("use_bias", True) else None
        self.bias = None if bias is None else nn.Parameter(_tensor(bias), requires_grad=False)
        self.act = activation(c.get("activation"), layer.name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _to_nchw(x, self.channels_last)
        full = F.conv_transpose2d(x, self.weight, None, self.stride, 0, 0, 1, self.dilation)
        for axis in range(2):
            n, k, s, d = int(x.shape[2 + axis]), self.kernel[axis], self.stride[axis], self.dilation[axis]
            op = None if self.output_padding is None else self.output_padding[axis]
            length = transposed_length(n, k, s, self.padding, op, d)
            start = max((n - 1) * s + (k - 1) * d + 1 - length, 0) // 2 if self.padding == "same" else 0
            have = int(full.shape[2 + axis]) - start
            full = full.narrow(2 + axis, start, min(have, length))
            if have < length:  # Keras's output is longer than the full transposed convolution: zeros at the end
                pad = [0, 0, 0, 0]
                pad[2 * (1 - axis) + 1] = length - have
                full = F.pad(full, pad)
        if self.bias is not None:
            full = full + self.bias.view(1, -1, 1, 1)
        return self.act(_from_nchw(full, self.channels_last))


class MaxPooling2D(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        c = layer.config
        self.channels_last = _data_format(c) == "channels_last"
        self.pool = _pair(c["pool_size"])
        self.stride = _pair(c.get("strides") or c["pool_size"])
        self.same = c.get("padding", "valid") == "same"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _to_nchw(x, self.channels_last)
        if self.same:
            (t, b), (left, r) = (same_padding(int(x.shape[2 + i]), self.pool[i], self.stride[i]) for i in range(2))
            x = F.pad(x, (left, r, t, b), value=float("-inf"))
        return _from_nchw(F.max_pool2d(x, self.pool, self.stride), self.channels_last)


class UpSampling2D(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        c = layer.config
        self.channels_last = _data_format(c) == "channels_last"
        self.size = _pair(c["size"])
        self.mode = str(c.get("interpolation", "nearest"))
        if self.mode not in ("nearest", "bilinear"):
            raise KerasFormatError(f"Layer '{layer.name}': UpSampling2D interpolation '{self.mode}' is not supported.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _to_nchw(x, self.channels_last)
        if self.mode == "nearest":  # integer factors: every pixel repeated, as Keras does
            y = x.repeat_interleave(self.size[0], dim=2).repeat_interleave(self.size[1], dim=3)
        else:  # TF2 resizes with half-pixel centres: PyTorch's align_corners=False
            size = (int(x.shape[2]) * self.size[0], int(x.shape[3]) * self.size[1])
            y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return _from_nchw(y, self.channels_last)


class BatchNormalization(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        c = layer.config
        axis = c.get("axis", -1)
        self.axes = [int(a) for a in (axis if isinstance(axis, list | tuple) else [axis])]
        epsilon = float(c.get("epsilon", 1e-3))
        mean = _weight(layer, "moving_mean").astype(np.float64)
        variance = _weight(layer, "moving_variance").astype(np.float64)
        gamma = _weight(layer, "gamma").astype(np.float64) if c.get("scale", True) else np.ones_like(mean)
        beta = _weight(layer, "beta").astype(np.float64) if c.get("center", True) else np.zeros_like(mean)
        scale = gamma / np.sqrt(variance + epsilon)
        self.scale = nn.Parameter(_tensor(scale), requires_grad=False)
        self.shift = nn.Parameter(_tensor(beta - mean * scale), requires_grad=False)
        self.param_shape = tuple(mean.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axes = sorted(_keras_axis(a, x.dim()) for a in self.axes)
        shape = [1] * x.dim()
        for axis in axes:
            shape[axis] = int(x.shape[axis])
        return x * self.scale.reshape(shape) + self.shift.reshape(shape)


class Activation(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        self.act = activation(layer.config.get("activation"), layer.name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x)


class ReLU(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        c = layer.config
        self.max_value = None if c.get("max_value") is None else float(c["max_value"])
        self.slope = float(c.get("negative_slope", 0.0) or 0.0)
        self.threshold = float(c.get("threshold", 0.0) or 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.where(x >= self.threshold, x, self.slope * (x - self.threshold))
        return y if self.max_value is None else torch.clamp(y, max=self.max_value)


class LeakyReLU(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        c = layer.config
        self.slope = float(c.get("negative_slope", c.get("alpha", 0.3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.slope)


class Softmax(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        axis = layer.config.get("axis", -1)
        if isinstance(axis, list | tuple):
            if len(axis) != 1:
                raise KerasFormatError(f"Layer '{layer.name}': softmax over several axes is not supported.")
            axis = axis[0]
        self.axis = int(axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=self.axis)


class Identity(nn.Module):
    """Dropout, noise and regularisation layers: nothing happens at inference."""

    def __init__(self, layer: KerasLayer | None = None):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Concatenate(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        self.axis = int(layer.config.get("axis", -1))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.axis)


class Merge(nn.Module):
    """Add, Subtract, Multiply, Average, Maximum, Minimum."""

    def __init__(self, layer: KerasLayer):
        super().__init__()
        self.kind = layer.class_name

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        if self.kind == "Subtract":
            return xs[0] - xs[1]
        for x in xs[1:]:
            if self.kind in ("Add", "Average"):
                out = out + x
            elif self.kind == "Multiply":
                out = out * x
            elif self.kind == "Maximum":
                out = torch.maximum(out, x)
            else:
                out = torch.minimum(out, x)
        return out / len(xs) if self.kind == "Average" else out


class Reshape(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        self.shape = tuple(int(s) for s in layer.config["target_shape"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)  # row-major, as Keras


class Permute(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        self.dims = (0, *(int(d) for d in layer.config["dims"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.dims)


class Dense(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        c = layer.config
        self.weight = nn.Parameter(_tensor(_weight(layer, "kernel").T), requires_grad=False)  # (in, out) -> (out, in)
        bias = _weight(layer, "bias") if c.get("use_bias", True) else None
        self.bias = None if bias is None else nn.Parameter(_tensor(bias), requires_grad=False)
        self.act = activation(c.get("activation"), layer.name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(F.linear(x, self.weight, self.bias))


class ZeroPadding2D(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        self.channels_last = _data_format(layer.config) == "channels_last"
        (t, b), (left, r) = _padding_pairs(layer.config["padding"])
        self.pad = (left, r, t, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _from_nchw(F.pad(_to_nchw(x, self.channels_last), self.pad), self.channels_last)


class Cropping2D(nn.Module):
    def __init__(self, layer: KerasLayer):
        super().__init__()
        self.channels_last = _data_format(layer.config) == "channels_last"
        self.crop = _padding_pairs(layer.config["cropping"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _to_nchw(x, self.channels_last)
        (t, b), (left, r) = self.crop
        x = x[:, :, t : int(x.shape[2]) - b, left : int(x.shape[3]) - r]
        return _from_nchw(x, self.channels_last)


def _padding_pairs(value: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(value, int):
        return (value, value), (value, value)
    first, second = value
    a = (int(first), int(first)) if isinstance(first, int) else (int(first[0]), int(first[1]))
    b = (int(second), int(second)) if isinstance(second, int) else (int(second[0]), int(second[1]))
    return a, b


_IDENTITY_CLASSES = (
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianDropout",
    "GaussianNoise",
    "AlphaDropout",
    "ActivityRegularization",
)
LAYER_BUILDERS: dict[str, Callable[[KerasLayer], nn.Module]] = {
    "Conv2D": Conv2D,
    "Convolution2D": Conv2D,
    "Conv2DTranspose": Conv2DTranspose,
    "Convolution2DTranspose": Conv2DTranspose,
    "MaxPooling2D": MaxPooling2D,
    "MaxPool2D": MaxPooling2D,
    "UpSampling2D": UpSampling2D,
    "BatchNormalization": BatchNormalization,
    "Activation": Activation,
    "ReLU": ReLU,
    "LeakyReLU": LeakyReLU,
    "Softmax": Softmax,
    "Concatenate": Concatenate,
    "Add": Merge,
    "Subtract": Merge,
    "Multiply": Merge,
    "Average": Merge,
    "Maximum": Merge,
    "Minimum": Merge,
    "Reshape": Reshape,
    "Permute": Permute,
    "Dense": Dense,
    "ZeroPadding2D": ZeroPadding2D,
    "Cropping2D": Cropping2D,
    **dict.fromkeys(_IDENTITY_CLASSES, Identity),
}


def supported_layer_types() -> Sequence[str]:
    return sorted((*LAYER_BUILDERS, "InputLayer"))
