"""Checking a resolved model's files: presence, sizes, sha256, and that checkpoints are torch archives (or Keras
HDF5 models)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from .checksum import sha256_file

if TYPE_CHECKING:
    from .resolved import ResolvedModel


def verify(resolved: ResolvedModel, *, checksums: bool = True) -> list[str]:
    """Problems with a resolved model's files (empty when fine): missing files, sizes, sha256, broken checkpoints."""
    problems: list[str] = []
    for expected in resolved.entry.files:
        path = resolved.base / expected.path
        if not path.is_file():
            if resolved.origin != "model-dir":  # a model-dir may be rooted elsewhere; structure checks cover it
                problems.append(f"missing {path}")
            continue
        if expected.size and path.stat().st_size != expected.size:
            problems.append(f"{path} has {path.stat().st_size} bytes, expected {expected.size}")
        elif checksums and expected.sha256 and sha256_file(path) != expected.sha256:
            problems.append(f"{path} sha256 {sha256_file(path)[:12]}... does not match the manifest")
    for stage_dir in resolved.stage_dirs:
        for name in ("dataset.json", "plans.json"):
            if not (stage_dir / name).is_file():
                problems.append(f"missing {stage_dir / name}")
    check = _check_keras_file if resolved.entry.kind == "keras" else _check_checkpoint
    for checkpoint in resolved.checkpoints:
        check(checkpoint, problems)
    return problems


def _check_checkpoint(path: Path, problems: list[str]) -> None:
    """A torch checkpoint is a zip archive with a data.pkl; truncated downloads fail this cheaply."""
    if not path.is_file():
        problems.append(f"missing checkpoint {path}")
        return
    try:
        with zipfile.ZipFile(path) as archive:
            if not any(n.endswith("data.pkl") for n in archive.namelist()):
                problems.append(f"{path} is not a torch checkpoint (no data.pkl)")
    except (zipfile.BadZipFile, OSError) as exc:
        problems.append(f"{path} is corrupt or truncated ({exc})")


def _check_keras_file(path: Path, problems: list[str]) -> None:
    """A Keras full-model file is HDF5 with a model configuration and weights; truncated downloads fail this."""
    if not path.is_file():
        problems.append(f"missing model file {path}")
        return
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "model_config" not in handle.attrs or "model_weights" not in handle:
                problems.append(f"{path} is HDF5 but not a Keras full model (no model_config/model_weights)")
    except OSError as exc:
        problems.append(f"{path} is corrupt or truncated ({exc})")
