"""Model weights: the manifest, the local cache, Hub downloads and verification.

``weights/manifest.toml`` names every model (repo, pinned revision, allow_patterns, expected files). A model
resolves to a local folder in its published layout, in this order:

1. an explicit ``model_dir`` (``--model-dir`` / ``KNEESCOPE_MODEL_DIR``): a local copy in the published layout;
2. a bundled model (the demo) inside this repository;
3. the Hugging Face cache under ``KNEESCOPE_WEIGHTS_DIR`` (default ``~/.cache/kneescope``), offline;
4. a download with ``huggingface_hub.snapshot_download`` into that cache, after one short reachability check
   so that a machine without network fails in about 2 s instead of a minute of retries.

``HF_HUB_OFFLINE=1`` disables step 4. Nothing here imports torch; checkpoints are only checked for presence, size,
sha256 (where the manifest knows it) and zip structure, and loaded by ``pipeline.segment``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import ssl
import threading
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .errors import WeightsUnavailableError

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_PATH = REPO_ROOT / "weights" / "manifest.toml"
DEFAULT_ENDPOINT = "https://huggingface.co"
REACHABILITY_TIMEOUT_S = 2.0
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class ExpectedFile:
    """A file the manifest expects: path relative to the repo/bundle root; size in bytes and sha256 if known."""

    path: str
    size: int = 0
    sha256: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """One model of the manifest (see the field notes at the top of weights/manifest.toml)."""

    name: str
    title: str
    kind: str
    source: str
    revision: str
    licence: str
    root: str
    checkpoint: str
    repo_id: str = ""
    path: str = ""
    gated: bool = False
    approx_size_mb: float = 0.0
    stages: tuple[str, ...] = ()
    fold: int | str = "auto"
    allow_patterns: tuple[str, ...] = ()
    files: tuple[ExpectedFile, ...] = ()
    label_fallback: str = ""
    note: str = ""

    @property
    def pinned(self) -> bool:
        """True when the revision is a full commit hash (or the model is bundled with the code)."""
        return self.source == "bundled" or bool(_SHA_RE.match(self.revision))

    @classmethod
    def from_toml(cls, name: str, table: dict) -> ModelEntry:
        known = set(cls.__dataclass_fields__) - {"name"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise WeightsUnavailableError(f"weights/manifest.toml: model '{name}' has unknown keys {unknown}.")
        values = dict(table)
        values["stages"] = tuple(values.get("stages", ()))
        values["allow_patterns"] = tuple(values.get("allow_patterns", ()))
        values["files"] = tuple(ExpectedFile(**f) for f in values.get("files", ()))
        return cls(name=name, **values)


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
        if self.entry.kind != "nnunet":
            return (self.folder / self.entry.checkpoint,)
        return tuple(d / f"fold_{self.fold}" / self.entry.checkpoint for d in self.stage_dirs)

    def describe(self) -> dict:
        """Provenance record: model, source, revision and sha256 of every checkpoint."""
        return {
            "model": self.entry.name,
            "title": self.entry.title,
            "repo_id": self.entry.repo_id or None,
            "revision": self.revision,
            "revision_pinned_in_manifest": self.entry.pinned,
            "origin": self.origin,
            "folder": str(self.folder),
            "stages": [d.name for d in self.stage_dirs],
            "fold": self.fold,
            "checkpoints": {str(p.relative_to(self.base)): sha256_file(p) for p in self.checkpoints},
            "licence": self.entry.licence,
        }


# --- manifest and locations -----------------------------------------------------------------------------------
def load_manifest(path: str | Path | None = None) -> dict[str, ModelEntry]:
    """All models of the manifest, by name."""
    path = Path(path) if path is not None else MANIFEST_PATH
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise WeightsUnavailableError(f"Cannot read the weights manifest {path}: {exc}.") from exc
    return {name: ModelEntry.from_toml(name, table) for name, table in data.get("models", {}).items()}


def get_entry(name: str, manifest: dict[str, ModelEntry] | None = None) -> ModelEntry:
    manifest = manifest if manifest is not None else load_manifest()
    if name not in manifest:
        raise WeightsUnavailableError(f"Unknown model '{name}'; the manifest lists {sorted(manifest)}.")
    return manifest[name]


def weights_dir() -> Path:
    """Hub cache root: ``$KNEESCOPE_WEIGHTS_DIR``, else ``~/.cache/kneescope``."""
    env = os.environ.get("KNEESCOPE_WEIGHTS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kneescope"


def model_dir_from_env() -> Path | None:
    env = os.environ.get("KNEESCOPE_MODEL_DIR")
    return Path(env).expanduser() if env else None


def hub_offline() -> bool:
    """HF_HUB_OFFLINE read now (huggingface_hub itself only reads it at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


# --- resolution -----------------------------------------------------------------------------------------------
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
            + _how_to_fix(entry, resolved.origin)
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
        raise WeightsUnavailableError(f"Model folder {base} does not exist. " + _how_to_fix(entry, origin))
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
    snapshot = _cached_snapshot(entry, cache_dir)
    origin = "hub-cache"
    if snapshot is None:
        if hub_offline():
            raise WeightsUnavailableError(
                f"Model '{entry.name}' ({entry.repo_id}) is not in the local cache {cache_dir} and HF_HUB_OFFLINE=1 "
                "forbids downloading. " + _how_to_fix(entry, "hub-cache")
            )
        if not download:
            raise WeightsUnavailableError(
                f"Model '{entry.name}' ({entry.repo_id}) is not in the local cache {cache_dir}. "
                + _how_to_fix(entry, "hub-cache")
            )
        snapshot = _download(entry, cache_dir)
        origin = "hub-download"
    revision = snapshot.name
    base = snapshot
    if entry.kind != "nnunet":
        return ResolvedModel(entry, base, base / entry.root, (), None, revision, origin)
    stage_dirs = tuple(_find_stage_dir(base, entry, stage) for stage in entry.stages)
    return ResolvedModel(entry, base, stage_dirs[0].parent, stage_dirs, _pick_fold(entry, stage_dirs), revision, origin)


def _cached_snapshot(entry: ModelEntry, cache_dir: Path) -> Path | None:
    """The cached snapshot folder for the entry's revision, without touching the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = snapshot_download(
            entry.repo_id,
            revision=entry.revision,
            cache_dir=str(cache_dir),
            allow_patterns=list(entry.allow_patterns),
            local_files_only=True,
        )
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        logger.debug("No cached snapshot of %s@%s: %s", entry.repo_id, entry.revision, exc)
        return None
    path = Path(path)
    # A snapshot folder can lack this model's files (another model of the same repo was fetched, or a download
    # was interrupted): then it does not count, and a download (which resumes) fills it in.
    if not all(_matches(path, pattern) for pattern in entry.allow_patterns):
        return None
    return path


def _matches(base: Path, pattern: str) -> bool:
    return any(base.glob(pattern))


def _download(entry: ModelEntry, cache_dir: Path) -> Path:
    from huggingface_hub import get_token, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError

    if entry.gated and not get_token():
        raise WeightsUnavailableError(_gated_message(entry))
    endpoint = hub_endpoint()
    problem = check_reachable(endpoint)
    if problem:
        raise WeightsUnavailableError(
            f"Cannot download model '{entry.name}': {problem}. This machine has no route to the Hugging Face Hub. "
            + _how_to_fix(entry, "hub-cache")
        )
    logger.info(
        "Downloading %s@%s (%s, about %s MB) into %s",
        entry.repo_id,
        entry.revision,
        ", ".join(entry.allow_patterns),
        entry.approx_size_mb,
        cache_dir,
    )
    try:
        path = snapshot_download(
            entry.repo_id,
            revision=entry.revision,
            cache_dir=str(cache_dir),
            allow_patterns=list(entry.allow_patterns),
            endpoint=endpoint,
        )
    except GatedRepoError as exc:
        raise WeightsUnavailableError(_gated_message(entry) + f" (Hub said: {exc})") from exc
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise WeightsUnavailableError(
            f"Downloading model '{entry.name}' from {entry.repo_id}@{entry.revision} failed: {exc}. "
            "Check the network and disk space, then run `python -m pipeline weights download "
            f"{entry.name}` again."
        ) from exc
    return Path(path)


def _gated_message(entry: ModelEntry) -> str:
    return (
        f"Model '{entry.name}' comes from the gated repository {entry.repo_id}. To get access: log in at "
        f"huggingface.co, open https://huggingface.co/{entry.repo_id} and accept its terms ({entry.licence}), "
        "create a read token at https://huggingface.co/settings/tokens, then set HF_TOKEN=<token> (or run "
        f"`hf auth login`) and run `python -m pipeline weights download {entry.name}`."
    )


def _how_to_fix(entry: ModelEntry, origin: str) -> str:
    if origin == "bundled":
        return (
            "The demo model ships with the code: restore weights/demo from git, or rebuild it with "
            "`python scripts/train_demo_model.py --out weights/demo`."
        )
    if origin == "model-dir":
        return (
            f"--model-dir / KNEESCOPE_MODEL_DIR must point at a copy of {entry.repo_id or 'the model'} in its "
            f"published layout ({entry.root}/<trainer folder>/ with plans.json, dataset.json, "
            f"fold_<k>/{entry.checkpoint})."
        )
    return (
        f"On a machine with internet run `python -m pipeline weights download {entry.name}` "
        f"(about {entry.approx_size_mb:g} MB) and copy {weights_dir()} (or set KNEESCOPE_WEIGHTS_DIR), or pass "
        "--model-dir with a local copy in the published layout."
    )


# --- network --------------------------------------------------------------------------------------------------
def check_reachable(endpoint: str, timeout_s: float = REACHABILITY_TIMEOUT_S) -> str | None:
    """None if the endpoint (or the HTTPS proxy) completes a TCP + TLS handshake within ``timeout_s``, else why not.

    A bare TCP connect is not enough: sandboxes and captive networks accept any connection and then stay silent.
    DNS lookups are not covered by socket timeouts, so the attempt runs in a daemon thread that is abandoned
    when the time is up.
    """
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s) as sock:
                if url.scheme == "https" and not proxy:
                    context = ssl.create_default_context()
                    with context.wrap_socket(sock, server_hostname=host):
                        pass
            outcome.append(None)
        except (OSError, ssl.SSLError) as exc:
            outcome.append(f"cannot reach {host}:{port} ({exc.__class__.__name__}: {exc})")

    thread = threading.Thread(target=attempt, daemon=True, name="hub-reachability")
    thread.start()
    thread.join(timeout_s + 0.5)
    return outcome[0] if outcome else f"cannot reach {host}:{port} (no answer within {timeout_s:g} s)"


# --- verification ---------------------------------------------------------------------------------------------
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for the life of the process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


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
    for checkpoint in resolved.checkpoints:
        _check_checkpoint(checkpoint, problems)
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


# --- listing --------------------------------------------------------------------------------------------------
def model_status(entry: ModelEntry, *, cache_dir: Path | None = None) -> str:
    """One word for `weights list`: bundled / cached / missing."""
    if entry.source == "bundled":
        return "bundled" if (REPO_ROOT / entry.path / entry.root).is_dir() else "missing"
    return "cached" if _cached_snapshot(entry, cache_dir or weights_dir()) else "not downloaded"
