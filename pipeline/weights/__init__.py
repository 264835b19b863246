"""Model weights: ``manifest`` (weights/manifest.toml, cache locations), ``hub`` (cache and downloads),
``verify`` (sizes, checksums, checkpoint structure) and ``resolve`` (name -> verified local folder).

Used by segmentation and the shape model alike; nothing here imports torch.
"""

from .checksum import sha256_file
from .hub import check_reachable
from .manifest import (
    MANIFEST_PATH,
    REPO_ROOT,
    ExpectedFile,
    ModelEntry,
    get_entry,
    hub_endpoint,
    hub_offline,
    load_manifest,
    model_dir_from_env,
    weights_dir,
)
from .resolve import model_location, model_status, resolve_model
from .resolved import ResolvedModel
from .verify import verify

__all__ = [
    "MANIFEST_PATH",
    "REPO_ROOT",
    "ExpectedFile",
    "ModelEntry",
    "ResolvedModel",
    "check_reachable",
    "get_entry",
    "hub_endpoint",
    "hub_offline",
    "load_manifest",
    "model_dir_from_env",
    "model_location",
    "model_status",
    "resolve_model",
    "sha256_file",
    "verify",
    "weights_dir",
]
