"""What the CPU can do: its model, the instruction-set flags that matter for inference, and a fingerprint.

bf16 is only offered where the CPU computes it natively (AVX512_BF16 or AMX); elsewhere oneDNN emulates it and it
is slower than fp32. Flags come from /proc/cpuinfo (Linux); without it, no native bf16 is assumed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from pathlib import Path

#: Flags reported in provenance and benchmarks (the ones oneDNN, ONNX Runtime and OpenVINO pick kernels by).
INFERENCE_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
)
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or platform.machine(), frozenset[str]()
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return model, flags
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_model() -> str:
    return _cpuinfo()[0]


def cpu_flags() -> frozenset[str]:
    return _cpuinfo()[1]


def has_native_bf16() -> bool:
    """True where bf16 matrix/convolution instructions exist (and PyTorch's oneDNN agrees)."""
    import torch

    if not any(flag in cpu_flags() for flag in _BF16_FLAGS):
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def describe_cpu() -> dict:
    """For provenance and benchmark tables: CPU model, inference-relevant flags, threads."""
    import torch

    return {
        "model": cpu_model(),
        "flags": [f for f in INFERENCE_FLAGS if f in cpu_flags()],
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def fingerprint(**extra: object) -> str:
    """A short hash of this machine's CPU, thread count and ``extra`` facts (versions, model, shapes)."""
    facts = {"cpu": describe_cpu(), **extra}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]
