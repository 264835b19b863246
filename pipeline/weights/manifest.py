"""The weights manifest (``weights/manifest.toml``) and where weights live on this machine."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsUnavailableError

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST_PATH = REPO_ROOT / "weights" / "manifest.toml"
DEFAULT_ENDPOINT = "https://huggingface.co"
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
    planes: tuple[str, ...] = ()

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
        values["planes"] = tuple(values.get("planes", ()))
        if values.get("kind") == "keras" and (not values["stages"] or len(values["planes"]) != len(values["stages"])):
            raise WeightsUnavailableError(
                f"weights/manifest.toml: model '{name}' (kind keras) needs its .h5 files in 'stages' and one plane "
                "per file in 'planes'."
            )
        values["files"] = tuple(ExpectedFile(**f) for f in values.get("files", ()))
        return cls(name=name, **values)


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


def how_to_fix(entry: ModelEntry, origin: str) -> str:
    if origin == "bundled":
        return (
            "The demo model ships with the code: restore weights/demo from git, or rebuild it with "
            "`python scripts/train_demo_model.py --out weights/demo`."
        )
    if origin == "model-dir" and entry.kind == "keras":
        return f"--model-dir / KNEESCOPE_MODEL_DIR must point at a folder holding {', '.join(entry.stages)}."
    if origin == "model-dir":
        return (
            f"--model-dir / KNEESCOPE_MODEL_DIR must point at a copy of {entry.repo_id or 'the model'} in its "
            f"published layout ({entry.root}/<trainer folder>/ with plans.json, dataset.json, "
            f"fold_<k>/{entry.checkpoint})."
        )
    fetch = (
        f"On a machine with internet run `python -m pipeline weights download {entry.name}` "
        f"(about {entry.approx_size_mb:g} MB) and copy {weights_dir()} here (or set KNEESCOPE_WEIGHTS_DIR)"
    )
    if entry.kind not in ("nnunet", "keras"):  # --model-dir is for segmentation models only
        return fetch + "."
    return fetch + ", or pass --model-dir with a local copy in the published layout."
