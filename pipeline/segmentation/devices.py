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
