"""The Goyal stand-in: a tiny U-Net of the DOSMA 2-D family trained on synthetic knees by real Keras
(``bench/goyal_reference.py standin``), saved under the published file names of ``aagatti/dosma_bones``, and a
hand-built huggingface_hub cache that holds it the way a download would (refs/main -> snapshots/<commit>/)."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

STANDIN = Path(__file__).resolve().parent / "data" / "goyal" / "standin"
STANDIN_INFO = json.loads((STANDIN / "standin.json").read_text()) if (STANDIN / "standin.json").is_file() else {}
FAKE_COMMIT = "22" * 20
REPO_FOLDER = "models--aagatti--dosma_bones"


def standin_file(name: str = "Goyal_Bone_Cart_July_2024_best_model.h5") -> Path:
    return STANDIN / name


def write_standin_cache(root: Path) -> Path:
    """``root`` as a KNEESCOPE_WEIGHTS_DIR holding the stand-in as commit FAKE_COMMIT of aagatti/dosma_bones."""
    snapshot = root / REPO_FOLDER / "snapshots" / FAKE_COMMIT
    snapshot.mkdir(parents=True)
    for name in STANDIN_INFO["files"]:
        shutil.copy(STANDIN / name, snapshot / name)
    (root / REPO_FOLDER / "refs").mkdir()
    (root / REPO_FOLDER / "refs" / "main").write_text(FAKE_COMMIT)
    return root


@functools.lru_cache(maxsize=4)
def standin_knee(orientation: str = "sagittal", side: str = "right", spacing=(0.7, 0.7, 0.8), seed: int = 3):
    """A synthetic MR-like knee (canonical truth, image), coarse enough to keep end-to-end tests quick."""
    from pipeline.synthetic import PhantomSpec, make_phantom, render_mr

    phantom = make_phantom(PhantomSpec(side=side, orientation=orientation, spacing=spacing))
    return phantom.labels, render_mr(phantom.labels, seed=seed)
