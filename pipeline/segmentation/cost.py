"""What segmenting an image costs in memory, per voxel: what the image limits check from its header before it is
decoded (an image whose case cannot fit is refused in milliseconds instead of failing after minutes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..io.limits import CaseCost


def nnunet_cost(n_classes: int, spacing_mm: Sequence[float] | None) -> CaseCost:
    """nnU-Net on the CPU holds, at the network's voxel size, the resampled image and a float32 logit per class plus
    a prediction count per voxel; back on the image's grid, the resampled logits (a float per class) and the labels.
    With 10 classes this predicted 10.2 GB for a 116 M-voxel image at the model's voxel size, where 9.3 GB was
    measured (issue 25's probe)."""
    return CaseCost(
        "segment",
        bytes_per_voxel=4.0 * n_classes + 16.0,
        bytes_per_work_voxel=4.0 * (n_classes + 2),
        work_spacing_mm=tuple(float(s) for s in spacing_mm) if spacing_mm else None,  # type: ignore[arg-type]
    )


def cost_of_model_folder(stage_dir: Path) -> CaseCost | None:
    """The cost of a model in its published layout, read from its plans.json and dataset.json (no torch), or None
    when they cannot be read."""
    try:
        plans = json.loads((stage_dir / "plans.json").read_text())
        dataset = json.loads((stage_dir / "dataset.json").read_text())
        configuration = stage_dir.name.rsplit("__", 1)[-1]
        spacing = plans["configurations"][configuration]["spacing"]
        return nnunet_cost(len(dataset["labels"]), spacing)
    except (OSError, KeyError, ValueError, TypeError):
        return None
