"""How a result was made: versions, parameters, input checksums, timings."""

from __future__ import annotations

import hashlib
import platform
import re
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from .. import __version__
from ..labels import LabelScheme
from ..volume import Volume

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
    "highdicom",
    "matplotlib",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_provenance(*, parameters: dict, inputs: dict, timings_s: dict, extra: dict | None = None) -> dict:
    return portable(
        {
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
    )


def describe_input(volume: Volume, scheme: LabelScheme | None = None) -> dict:
    """An input's record for results and provenance: file facts (or an array checksum), geometry, scheme."""
    keys = ("file_name", "file_size_bytes", "sha256", "source_format", "series", "dicom")
    info = {key: volume.meta[key] for key in keys if key in volume.meta}
    if "sha256" not in info:  # given in memory: the checksum of the voxels and their geometry stands in
        info.update(file_name=None, file_size_bytes=None, sha256=array_sha256(volume), sha256_of="voxel array")
    info.update(volume.geometry_dict())
    if scheme is not None:
        info["label_scheme"] = scheme.name
    return info


def array_sha256(volume: Volume) -> str:
    """sha256 of a volume's voxels (C order) and geometry: what identifies an input given in memory."""
    digest = hashlib.sha256()
    digest.update(str((volume.array.dtype.str, volume.array.shape, volume.geometry_dict())).encode())
    digest.update(volume.array.tobytes(order="C"))
    return digest.hexdigest()


def portable(data):
    """``data`` (JSON-ready) with this server's folders in its texts replaced by names that mean something elsewhere.

    Results and provenance leave the server (downloads, cohort tables): a reason such as "not in the local cache
    /srv/.../weights" becomes "not in the local cache <weights cache>". Replaced: the weights cache, a model
    folder from KNEESCOPE_MODEL_DIR, this repository and the home folder.
    """
    rules = _folder_rules()
    return _replace(data, rules)


def _folder_rules() -> list[tuple[re.Pattern, str]]:
    from ..weights import REPO_ROOT, model_dir_from_env, weights_dir

    folders = ((weights_dir(), "<weights cache>"), (model_dir_from_env(), "<model-dir>"), (REPO_ROOT, "<repository>"))
    rules = [(Path(folder).absolute(), name) for folder, name in folders if folder is not None]
    rules.append((Path.home(), "~"))
    rules.sort(key=lambda rule: -len(str(rule[0])))  # the most specific folder first (the cache is under home)
    # A folder matches only as a whole path component: /data/weights does not match inside /data/weights2.
    return [
        (re.compile(re.escape(str(folder)) + r"(?![\w.-])"), name) for folder, name in rules if folder.parent != folder
    ]


def _replace(data, rules):
    if isinstance(data, str):
        for pattern, name in rules if "/" in data or "\\" in data else ():
            data = pattern.sub(name, data)
        return data
    if isinstance(data, dict):
        return {key: _replace(value, rules) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(_replace(value, rules) for value in data)
    return data
