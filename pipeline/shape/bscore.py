"""BScore from a fitted NSM latent (model-formats §2): pure numpy, no torch.

BScore(latent) = (latent . b - mean_healthy) / std_healthy, with the unit vector b from mean healthy to mean OA
latent. 0 = the average healthy (KL 0) knee; positive = towards OA. Valid only for latents of the paired model
fitted with the same preprocessing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Published BScore folder paired with each published NSM (``anoopai/KneePipeline: BSCORE_MODELS/``).
PAIRED_BSCORE_FOLDERS: dict[str, str] = {
    "647": "NSM_Orig_BScore_Bone_Cartilage_April_17_2025",
    "551": "NSM_Orig_BScore_Bone_Only_April_18_2025",
}


@dataclass(frozen=True)
class BScoreModel:
    """A BScore projection: ``vector`` (D,) float64 unit vector, ``mean_healthy`` and ``std_healthy`` scalars."""

    vector: np.ndarray
    mean_healthy: float
    std_healthy: float
    name: str = ""

    def __post_init__(self) -> None:
        if self.vector.ndim != 1:
            raise ValueError(f"bscore vector must be 1-D, got shape {self.vector.shape}")
        if not self.std_healthy > 0:
            raise ValueError(f"std_healthy must be positive, got {self.std_healthy}")

    @classmethod
    def from_folder(cls, folder: Path) -> BScoreModel:
        """Read ``model.json`` (``bscore_vector``, ``mean_healthy``, ``std_healthy``), else the ``.npy`` files."""
        folder = Path(folder)
        model_json = folder / "model.json"
        if model_json.is_file():
            data = json.loads(model_json.read_text())
            vector, mean, std = data["bscore_vector"], data["mean_healthy"], data["std_healthy"]
        elif (folder / "bscore_vector.npy").is_file():
            vector = np.load(folder / "bscore_vector.npy")
            mean, std = np.load(folder / "mean_healthy.npy"), np.load(folder / "std_healthy.npy")
        else:
            raise FileNotFoundError(f"no BScore model (model.json or bscore_vector.npy) in {folder}")
        return cls(np.asarray(vector, dtype=np.float64).ravel(), float(mean), float(std), folder.name)

    def score(self, latent: Sequence[float] | Sequence[Sequence[float]] | np.ndarray) -> float:
        """BScore of one latent, given flat (D,) or nested [[D floats]] as in ``NSM_recon_params.json``."""
        z = np.asarray(latent, dtype=np.float64).ravel()
        if z.shape != self.vector.shape:
            raise ValueError(f"latent has {z.size} values, the BScore vector {self.vector.size}")
        return float((z @ self.vector - self.mean_healthy) / self.std_healthy)


def resolve_bscore_folder(bscore_dir: Path | None, model_id: str) -> Path | None:
    """The folder holding the BScore model for ``model_id``: ``bscore_dir`` itself or its paired subfolder.

    Returns None when nothing usable is there (the caller reports BScore as unavailable).
    """
    if bscore_dir is None:
        return None
    bscore_dir = Path(bscore_dir)
    paired = PAIRED_BSCORE_FOLDERS.get(model_id)
    candidates = ([bscore_dir / paired] if paired else []) + [bscore_dir]
    for folder in candidates:
        if (folder / "model.json").is_file() or (folder / "bscore_vector.npy").is_file():
            return folder
    return None


def bscore(latent: Sequence[float] | np.ndarray, folder: Path) -> float:
    """Convenience: BScore of ``latent`` with the model stored in ``folder``."""
    return BScoreModel.from_folder(folder).score(latent)
