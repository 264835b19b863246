"""Where the published shape-model files live; torch-free so a missing-weights check costs nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PublishedModel:
    """Where a published NSM lives inside the HF snapshot and what it models."""

    model_id: str
    folder: str
    weights: str
    n_objects: int


PUBLISHED_MODELS: dict[str, PublishedModel] = {
    "647": PublishedModel("647", "647_nsm_femur_v0.0.1", "2000.pth", 2),  # femur bone + femoral cartilage
    "551": PublishedModel("551", "551_nsm_femur_bone_v0.0.1", "1150.pth", 1),  # femur bone only
}
_CONFIG_NAMES = ("model_params_config.json", "model_config.json")


def find_model_files(model_dir: Path | None, model_id: str) -> tuple[Path, Path] | None:
    """(config json, checkpoint) for ``model_id``, or None if either is missing.

    ``model_dir`` may be the model folder itself (holding ``model_params_config.json`` and ``model/<epoch>.pth``) or
    a folder above it (the HF snapshot root) holding ``<id>_nsm_*``. The published epoch file is preferred; else the
    highest-numbered ``.pth`` under ``model/``. A folder whose config has the wrong number of objects for a published
    id (e.g. the 551 folder asked for 647) is not accepted.
    """
    if model_dir is None or not Path(model_dir).is_dir():
        return None
    model_dir = Path(model_dir)
    published = PUBLISHED_MODELS.get(model_id)
    candidates = [model_dir]
    if published is not None:
        candidates.insert(0, model_dir / published.folder)
    candidates += sorted(model_dir.glob(f"{model_id}_nsm_*"))
    for folder in candidates:
        config = next((folder / name for name in _CONFIG_NAMES if (folder / name).is_file()), None)
        weights = _weights_in(folder, published.weights if published else None)
        if config is not None and weights is not None and _objects_match(config, published):
            return config, weights
    return None


def _weights_in(folder: Path, preferred: str | None) -> Path | None:
    if preferred and (folder / "model" / preferred).is_file():
        return folder / "model" / preferred
    numbered = [p for p in (folder / "model").glob("*.pth") if p.stem.isdigit()]
    return max(numbered, key=lambda p: int(p.stem)) if numbered else None


def _objects_match(config: Path, published: PublishedModel | None) -> bool:
    if published is None:
        return True
    try:
        n_objects = json.loads(config.read_text()).get("objects_per_decoder", published.n_objects)
    except (OSError, ValueError):
        return False
    return int(n_objects) == published.n_objects
