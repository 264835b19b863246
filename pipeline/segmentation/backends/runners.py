"""Runners: callables that take one network input patch (1, C, *patch), float32 on the CPU, and return its logits.

nnU-Net's predictor calls ``self.network(x)`` once per tile (and once per mirrored copy); the segmenter puts a runner
there for that call only (``predictor.py``), so nnU-Net's preprocessing, sliding window, Gaussian weighting,
mirroring and resampling are untouched. Every runner returns float32 logits.

- :class:`TorchRunner`: PyTorch eager with the CPU levers (bf16 autocast, channels-last 3-D, ``torch.compile``).
- :class:`OnnxRuntimeRunner`: the exported graph in ONNX Runtime (CPU execution provider, fp32).
- :class:`OpenVinoRunner`: the exported graph in OpenVINO (CPU plugin; fp32, or bf16 where the CPU has it).

The graph runners were exported for one input shape; any other shape goes to the eager network.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from .cpu import has_native_bf16


class BackendUnavailable(RuntimeError):
    """A backend cannot run here (package missing, CPU lacks an instruction set, device mismatch)."""


class TorchRunner:
    """PyTorch eager on the predictor's own network, with optional levers.

    Args:
        network: the loaded nnU-Net network (weights are reloaded into it by nnU-Net; levers keep working).
        precision: 'fp32'; 'bf16' (autocast; on a CPU only where it has native bf16); 'fp16' (CUDA autocast).
        channels_last: convert weights and inputs to channels-last 3-D memory format.
        compile: wrap the network in ``torch.compile`` (slow first call; the compiled graph is cached per process).
    """

    backend = "torch"

    def __init__(
        self,
        network: Any,
        *,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,
        device_type: str = "cpu",
    ):
        import torch

        if precision not in ("fp32", "bf16", "fp16") or (precision == "fp16" and device_type != "cuda"):
            raise BackendUnavailable(f"PyTorch runs fp32 or bf16 on a CPU (fp16 on CUDA), not {precision}")
        if precision == "bf16" and device_type == "cpu" and not has_native_bf16():
            raise BackendUnavailable("this CPU has no native bf16 (AVX512_BF16/AMX); bf16 would be emulated")
        self.precision = precision
        self.channels_last = channels_last
        self.compiled = compile
        self._dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        if channels_last:
            network.to(memory_format=torch.channels_last_3d)
        self._call = torch.compile(network) if compile else network

    def __call__(self, x: Any) -> Any:
        import torch

        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        if x.device.type in ("cpu", "cuda"):
            # Explicit either way: nnU-Net wraps CUDA runs in fp16 autocast, and the innermost context wins.
            enabled = self._dtype is not None
            context: Any = torch.autocast(x.device.type, dtype=self._dtype or torch.bfloat16, enabled=enabled)
        else:
            context = contextlib.nullcontext()
        with context:
            out = self._call(x)
        return out.float().contiguous()

    def describe(self) -> dict:
        import torch

        return {
            "backend": self.backend,
            "precision": self.precision,
            "runtime": f"torch {torch.__version__}",
            "channels_last": self.channels_last,
            "torch_compile": self.compiled,
            "threads": torch.get_num_threads(),
        }


class _GraphRunner:
    """Shared part of the exported-graph runners: shape guard and description."""

    backend = ""
    precision = "fp32"
    runtime = ""

    def __init__(
        self, graph_path: Path, input_shape: tuple[int, ...], eager: Any, *, threads: int, precision: str, **options
    ):
        self.graph_path = graph_path
        self.input_shape = tuple(input_shape)
        self.threads = threads
        self.precision = precision
        self._eager = eager
        self._open(**options)

    def _open(self, **options: Any) -> None:
        """Load the graph into the runtime (raise BackendUnavailable when it cannot run here)."""
        raise NotImplementedError

    def __call__(self, x: Any) -> Any:
        import torch

        if tuple(x.shape) != self.input_shape:
            return self._eager(x).float()  # not the exported shape: the graph cannot take it
        out = self.run(x.detach().float().cpu().contiguous().numpy())
        return torch.from_numpy(out).to(x.device)

    def run(self, patch: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> dict:
        return {
            "backend": self.backend,
            "precision": self.precision,
            "runtime": self.runtime,
            "threads": self.threads,
            "graph": self.graph_path.name,
        }


class OnnxRuntimeRunner(_GraphRunner):
    """ONNX Runtime; on the CPU provider fp32 only. ``providers`` (e.g. TensorRT, CUDA with their options) are for GPU
    checks with an onnxruntime-gpu build; the precision is then the provider's business (e.g. ``trt_fp16_enable``)."""

    backend = "onnx"

    def _open(self, *, providers: list | None = None, **unused: Any) -> None:
        if self.precision != "fp32" and providers is None:
            raise BackendUnavailable(f"ONNX Runtime's CPU provider runs this graph in fp32 only, not {self.precision}")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"onnxruntime is not installed ({exc})") from exc
        providers = providers or ["CPUExecutionProvider"]
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        missing = [n for n in names if n not in ort.get_available_providers()]
        if missing:
            raise BackendUnavailable(f"this onnxruntime build lacks {', '.join(missing)}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(self.graph_path), options, providers=providers)
        self._input = self._session.get_inputs()[0].name
        self.runtime = f"onnxruntime {ort.__version__} ({', '.join(self._session.get_providers())})"

    def run(self, patch: Any) -> Any:
        return self._session.run(None, {self._input: patch})[0]


def import_openvino() -> Any:
    """openvino with its usage telemetry off: with ``openvino_telemetry`` unimportable, OpenVINO uses its own stub.

    Only the converter tools send telemetry (KneeScope reads ONNX through ``Core`` and never calls them); this
    makes sure nothing in this process can.
    """
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailable(f"openvino is not installed ({exc})") from exc
    return openvino


class OpenVinoRunner(_GraphRunner):
    backend = "openvino"

    def _open(self, *, cache_dir: Path | None = None, **unused: Any) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise BackendUnavailable(f"OpenVINO runs fp32 or bf16 here, not {self.precision}")
        if self.precision == "bf16" and not has_native_bf16():
            raise BackendUnavailable("this CPU has no native bf16 (AVX512_BF16/AMX)")
        ov = import_openvino()
        # OpenVINO picks bf16 by itself on CPUs that have it: say which precision we want, always.
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "f32" if self.precision == "fp32" else "bf16",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": self.threads,
            # Pinning threads to cores pays off on a dedicated machine only; on shared machines (CI, clusters,
            # several users) it was measured slower (bench/RESULTS.md).
            "ENABLE_CPU_PINNING": False,
        }
        if cache_dir is not None:
            config["CACHE_DIR"] = str(cache_dir)  # compiled blobs: later loads skip the compilation
        core = ov.Core()
        self._compiled = core.compile_model(str(self.graph_path), "CPU", config)
        self._request = self._compiled.create_infer_request()
        self.runtime = f"openvino {ov.get_version().split('-')[0]}"

    def run(self, patch: Any) -> Any:
        import numpy as np

        result = self._request.infer({0: patch})
        return np.array(result[self._compiled.output(0)], dtype=np.float32, copy=True)  # buffers are reused
