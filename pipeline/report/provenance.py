"""How a result was made: versions, parameters, input checksums, timings."""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from importlib import metadata

from .. import __version__

PACKAGES = (
    "numpy",
    "scipy",
    "SimpleITK",
    "pydicom",
    "nibabel",
    "scikit-image",
    "pyvista",
    "vtk",
    "trimesh",
    "fast-simplification",
    "torch",
    "nnunetv2",
    "huggingface_hub",
)


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_provenance(*, parameters: dict, inputs: dict, timings_s: dict, extra: dict | None = None) -> dict:
    return {
        "software": {"name": "KneeScope", "version": __version__},
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "parameters": parameters,
        "inputs": inputs,
        "timings_s": {k: round(v, 3) for k, v in timings_s.items()},
        **(extra or {}),
    }
