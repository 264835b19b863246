"""A model's files on this machine, once resolved (``resolve.resolve_model``); checked by ``verify``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .checksum import sha256_file
from .manifest import REPO_ROOT, ModelEntry


@dataclass(frozen=True)
class ResolvedModel:
    """A model's files on this machine.

    Attributes:
        entry: the manifest entry.
        base: the repo snapshot / bundle / model-dir root that manifest file paths are relative to.
        folder: ``base / entry.root`` (nnU-Net dataset folder, or the NSM model folder).
        stage_dirs: nnU-Net trainer folders in run order (empty for NSM models).
        fold: the fold used (nnU-Net), None for NSM models.
        revision: the Hub commit actually used, or 'bundled' / 'local'.
        origin: 'model-dir', 'bundled', 'hub-cache' or 'hub-download'.
    """

    entry: ModelEntry
    base: Path
    folder: Path
    stage_dirs: tuple[Path, ...]
    fold: int | None
    revision: str
    origin: str

    @property
    def checkpoints(self) -> tuple[Path, ...]:
        if self.entry.kind == "keras":  # Keras full-model files, one per plane, in run order
            return tuple(self.folder / name for name in self.entry.stages)
        if self.entry.kind != "nnunet":
            return (self.folder / self.entry.checkpoint,)
        return tuple(d / f"fold_{self.fold}" / self.entry.checkpoint for d in self.stage_dirs)

    def portable_folder(self) -> str:
        """The model folder without this server's absolute paths (provenance files leave the server)."""
        if self.origin == "bundled":
            return str(self.folder.relative_to(REPO_ROOT))
        inside = self.folder.relative_to(self.base) if self.folder.is_relative_to(self.base) else Path(".")
        if self.origin == "model-dir":
            return str(Path("<model-dir>") / inside)
        return str(Path("<weights cache>") / f"{self.entry.repo_id}@{self.revision}" / inside)

    def describe(self) -> dict:
        """Provenance record: model, source, revision and sha256 of every checkpoint."""
        return {
            "model": self.entry.name,
            "title": self.entry.title,
            "repo_id": self.entry.repo_id or None,
            "revision": self.revision,
            "revision_pinned_in_manifest": self.entry.pinned,
            "origin": self.origin,
            "folder": self.portable_folder(),
            "stages": [d.name for d in self.stage_dirs] or list(self.entry.stages),
            "fold": self.fold,
            "checkpoints": {str(p.relative_to(self.base)): sha256_file(p) for p in self.checkpoints},
            "licence": self.entry.licence,
        }
