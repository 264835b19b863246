"""Model weights: from a manifest name to a verified local folder in the published layout.

``weights/manifest.toml`` names every model (repo, pinned revision, allow_patterns, expected files). A model
resolves to a local folder in its published layout, in this order:

1. an explicit ``model_dir`` (``--model-dir`` / ``KNEESCOPE_MODEL_DIR``): a local copy in the published layout;
2. a bundled model (the demo) inside this repository;
3. the Hugging Face cache under ``KNEESCOPE_WEIGHTS_DIR`` (default ``~/.cache/kneescope``), offline;
4. a download with ``huggingface_hub.snapshot_download`` into that cache, after one short reachability check
   so that a machine without network fails in about 2 s instead of a minute of retries.

``HF_HUB_OFFLINE=1`` disables step 4. Nothing here imports torch; checkpoints are only checked for presence, size,
sha256 (where the manifest knows it) and zip structure, and loaded by ``pipeline.segmentation``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsUnavailableError
from . import hub
from .manifest import REPO_ROOT, ModelEntry, get_entry, how_to_fix, hub_offline, weights_dir
from .verify import sha256_file, verify

logger = logging.getLogger(__name__)


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


def resolve_model(
    name: str | ModelEntry,
    *,
    model_dir: str | Path | None = None,
    download: bool = True,
    cache_dir: str | Path | None = None,
    verify_checksums: bool = True,
) -> ResolvedModel:
    """Find (and if needed download) a model's files and check them; see the module docstring for the order.

    Raises:
        WeightsUnavailableError: saying what is missing and how to get it.
    """
    entry = name if isinstance(name, ModelEntry) else get_entry(name)
    model_dir = Path(model_dir).expanduser() if model_dir is not None else None
    if model_dir is not None:
        resolved = _from_local(entry, model_dir, origin="model-dir", revision="local")
    elif entry.source == "bundled":
        resolved = _from_local(entry, REPO_ROOT / entry.path, origin="bundled", revision="bundled")
    else:
        resolved = _from_hub(entry, cache_dir=Path(cache_dir) if cache_dir else weights_dir(), download=download)
    problems = verify(resolved, checksums=verify_checksums)
    if problems:
        raise WeightsUnavailableError(
            f"Model '{entry.name}' in {resolved.base} failed verification: "
            + "; ".join(problems)
            + ". "
            + how_to_fix(entry, resolved.origin)
        )
    if not entry.pinned and resolved.origin.startswith("hub"):
        logger.warning(
            "Model '%s' is not pinned to a commit in weights/manifest.toml (revision '%s'); using commit %s. "
            "See weights/README.md to pin it.",
            entry.name,
            entry.revision,
            resolved.revision,
        )
    return resolved


def _from_local(entry: ModelEntry, base: Path, *, origin: str, revision: str) -> ResolvedModel:
    """A folder in the published layout: the repo root, its models/ folder, the dataset folder or a trainer folder."""
    if not base.is_dir():
        raise WeightsUnavailableError(f"Model folder {base} does not exist. " + how_to_fix(entry, origin))
    if entry.kind != "nnunet":
        folder = base / entry.root if (base / entry.root).is_dir() else base
        return ResolvedModel(entry, base, folder, (), None, revision, origin)
    stage_dirs = tuple(_find_stage_dir(base, entry, stage) for stage in entry.stages)
    return ResolvedModel(entry, base, stage_dirs[0].parent, stage_dirs, _pick_fold(entry, stage_dirs), revision, origin)


def _find_stage_dir(base: Path, entry: ModelEntry, stage: str) -> Path:
    """Locate a trainer folder below ``base`` by its exact name, else by its configuration suffix."""
    configuration = stage.split("__")[-1]
    candidates = [base / entry.root / stage, base / stage, base / "models" / entry.root / stage]
    if (base / "plans.json").is_file() and (base.name == stage or base.name.endswith("__" + configuration)):
        candidates.insert(0, base)
    for candidate in candidates:
        if (candidate / "plans.json").is_file():
            return candidate
    # Published copies have been renamed before (e.g. nnUNetTrainer_250epochs__...): match the configuration only.
    matches = sorted(p.parent for p in base.glob("**/plans.json") if p.parent.name.endswith("__" + configuration))
    if len(matches) == 1:
        logger.warning("Using %s for stage %s (matched by configuration name only).", matches[0], stage)
        return matches[0]
    found = "several: " + ", ".join(map(str, matches)) if matches else "none"
    raise WeightsUnavailableError(
        f"No nnU-Net model folder for {stage} under {base} (found {found}). Give the folder that holds "
        f"{entry.root}/{stage}/ (with plans.json, dataset.json and fold_<k>/{entry.checkpoint})."
    )


def _pick_fold(entry: ModelEntry, stage_dirs: tuple[Path, ...]) -> int:
    if entry.fold != "auto":
        return int(entry.fold)
    folds = sorted(
        int(p.name.split("_")[1])
        for p in stage_dirs[0].glob("fold_*")
        if p.name.split("_")[1].isdigit() and (p / entry.checkpoint).exists()
    )
    if not folds:
        raise WeightsUnavailableError(
            f"No fold_<k>/{entry.checkpoint} in {stage_dirs[0]}. The download is incomplete or the checkpoint was "
            f"removed: run `python -m pipeline weights download {entry.name}` again."
        )
    return folds[0]


def _from_hub(entry: ModelEntry, *, cache_dir: Path, download: bool) -> ResolvedModel:
    snapshot = hub.cached_snapshot(entry, cache_dir)
    origin = "hub-cache"
    if snapshot is None:
        if hub_offline():
            raise WeightsUnavailableError(
                f"Model '{entry.name}' ({entry.repo_id}) is not in the local cache {cache_dir} and HF_HUB_OFFLINE=1 "
                "forbids downloading. " + how_to_fix(entry, "hub-cache")
            )
        if not download:
            raise WeightsUnavailableError(
                f"Model '{entry.name}' ({entry.repo_id}) is not in the local cache {cache_dir}. "
                + how_to_fix(entry, "hub-cache")
            )
        snapshot = hub.download(entry, cache_dir)
        origin = "hub-download"
    revision = snapshot.name
    base = snapshot
    if entry.kind != "nnunet":
        return ResolvedModel(entry, base, base / entry.root, (), None, revision, origin)
    stage_dirs = tuple(_find_stage_dir(base, entry, stage) for stage in entry.stages)
    return ResolvedModel(entry, base, stage_dirs[0].parent, stage_dirs, _pick_fold(entry, stage_dirs), revision, origin)


# --- listing --------------------------------------------------------------------------------------------------
def model_status(entry: ModelEntry, *, cache_dir: Path | None = None) -> str:
    """One word for `weights list`: bundled / cached / missing."""
    if entry.source == "bundled":
        return "bundled" if (REPO_ROOT / entry.path / entry.root).is_dir() else "missing"
    return "cached" if hub.cached_snapshot(entry, cache_dir or weights_dir()) else "not downloaded"


def model_location(entry: ModelEntry, *, cache_dir: Path | None = None) -> Path:
    """Where a model's files are (or would be) on this machine: the bundled folder, or the hub cache root."""
    return REPO_ROOT / entry.path if entry.source == "bundled" else (cache_dir or weights_dir())
