"""Inference backends: what runs the network on each sliding-window tile (nnU-Net does everything else).

``torch`` (eager, with CPU levers), ``onnx`` (ONNX Runtime) and ``openvino`` (OpenVINO) on the graph exported once per
checkpoint (``export``), and ``auto``: the fastest that agrees with eager fp32 on this machine (``select``).
Importing this package imports neither torch nor a runtime.
"""

from .agreement import agrees, compare_labels, compare_logits
from .cpu import describe_cpu, has_native_bf16
from .export import EXPORT_DIR_ENV, export_folder, exported_onnx
from .runners import BackendUnavailable, OnnxRuntimeRunner, OpenVinoRunner, TorchRunner
from .select import BACKENDS, CANDIDATES, PRECISIONS, LoadedRunner, NetworkSpec, calibrate, load_runner, make_runner

__all__ = [
    "BACKENDS",
    "CANDIDATES",
    "EXPORT_DIR_ENV",
    "PRECISIONS",
    "BackendUnavailable",
    "LoadedRunner",
    "NetworkSpec",
    "OnnxRuntimeRunner",
    "OpenVinoRunner",
    "TorchRunner",
    "agrees",
    "calibrate",
    "compare_labels",
    "compare_logits",
    "describe_cpu",
    "export_folder",
    "exported_onnx",
    "has_native_bf16",
    "load_runner",
    "make_runner",
]
