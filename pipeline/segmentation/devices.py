"""Which torch device runs the network."""

from __future__ import annotations

from ..errors import KneePipelineError


def select_device(preference: str = "auto"):
    """torch.device: CUDA, else Apple MPS, else CPU ('auto'), or exactly the one asked for."""
    import torch

    preference = (preference or "auto").lower()
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if preference == "auto":
        preference = next(d for d in ("cuda", "mps", "cpu") if available[d])
    if preference not in available:
        raise KneePipelineError(f"Unknown device '{preference}': use auto, cuda, mps or cpu.")
    if not available[preference]:
        raise KneePipelineError(f"Device '{preference}' is not available on this machine; use --device auto or cpu.")
    if preference == "cuda":
        # TF32 on Ampere+ for the fp32 parts (autocast runs the convolutions in fp16 anyway).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return torch.device(preference)


def release_memory(device) -> None:
    """After a case: on CUDA, collect reference cycles and hand torch's cached blocks back to the driver, so the
    next case (or another process) gets the GPU memory. Elsewhere nothing: after a CPU segmentation a full collection
    finds nothing unreachable (refcounting has freed every array and tensor), yet it takes ~0.3 s with Python's lock
    held in the app's process (~570k objects), stalling every other job and request there
    (tests/pipeline/segmentation/test_segmenter.py::test_a_cpu_segmentation_leaves_no_arrays_in_cycles)."""
    if getattr(device, "type", None) != "cuda":
        return
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()
