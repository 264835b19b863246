"""How closely a backend's logits match PyTorch eager fp32: the numbers that decide whether it may be used.

Random weights leave near-ties that any rounding flips, so reduced precision is judged by per-structure Dice on a
knee-like input rather than by voxel-wise argmax agreement (issue 15's acceptance).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: An fp32 backend must label at least this fraction of voxels exactly as eager fp32 does.
MIN_ARGMAX_AGREEMENT_FP32 = 0.999
#: Every structure must reach at least this Dice against eager fp32 (any precision).
MIN_DICE = 0.995
#: Structures smaller than this fraction of the patch are too small for a stable Dice and are not judged.
MIN_STRUCTURE_FRACTION = 0.001


def dice_per_label(reference: np.ndarray, other: np.ndarray, labels: list[int]) -> dict[int, float]:
    out = {}
    for label in labels:
        a, b = reference == label, other == label
        total = int(a.sum()) + int(b.sum())
        out[label] = 2.0 * float(np.logical_and(a, b).sum()) / total if total else 1.0
    return out


def judged_labels(reference: np.ndarray, *, min_fraction: float = MIN_STRUCTURE_FRACTION) -> list[int]:
    """Foreground labels large enough in ``reference`` to be judged."""
    values, counts = np.unique(reference, return_counts=True)
    return [int(v) for v, c in zip(values, counts, strict=True) if v != 0 and c >= min_fraction * reference.size]


def compare_labels(reference: np.ndarray, other: np.ndarray) -> dict:
    """Argmax agreement and Dice of two label arrays (no probabilities needed)."""
    dice = dice_per_label(reference, other, judged_labels(reference))
    return {
        "argmax_agreement": float(np.mean(reference == other)),
        "dice_min": min(dice.values()) if dice else 1.0,
        "dice": {str(k): round(v, 5) for k, v in dice.items()},
    }


def compare_logits(reference: Any, other: Any) -> dict:
    """Logits (1, C, ...) of eager fp32 and of a backend: max |softmax difference|, argmax agreement, Dice."""
    import torch

    ref, oth = torch.as_tensor(reference).float(), torch.as_tensor(other).float()
    max_diff = float((torch.softmax(ref, 1) - torch.softmax(oth, 1)).abs().max())
    result = compare_labels(ref.argmax(1).numpy(), oth.argmax(1).numpy())
    return {"max_softmax_diff": max_diff, **result}


def agrees(metrics: dict, precision: str) -> bool:
    """The acceptance rule: Dice for every precision, plus voxel-wise agreement for fp32."""
    if metrics["dice_min"] < MIN_DICE:
        return False
    return precision != "fp32" or metrics["argmax_agreement"] >= MIN_ARGMAX_AGREEMENT_FP32
