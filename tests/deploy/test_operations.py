"""Operations: the systemd unit (systemd-analyze, an offline start), app.serve's shutdown on SIGTERM, doctor.

The service test runs the unit's own commands, mapped from /opt/kneescope to this checkout, with the hub unreachable
(HF_ENDPOINT on a closed local port) and an empty weights cache, as on an air-gapped host.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.serve import site_addresses
from tests.fixtures import REPO
from tests.fixtures.app import free_port

ROOT = REPO
UNIT = ROOT / "deploy" / "kneescope.service"
INSTALL_DIR = "/opt/kneescope"


def unit_for_this_checkout() -> str:
    """The unit as an operator installs it, with its install folder pointing at this checkout and interpreter."""
    text = UNIT.read_text()
    return text.replace(f"{INSTALL_DIR}/.venv/bin/python", sys.executable).replace(INSTALL_DIR, str(ROOT))


def unit_values(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_systemd_analyze_verifies_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian: apt-get install systemd; `make test` does it as root)")
    unit = tmp_path / "kneescope.service"
    unit.write_text(unit_for_this_checkout())
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kneescope.service" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_loopback_sites_answer_on_every_loopback_name():
    assert site_addresses("http://localhost:8080") == "http://localhost:8080, http://127.0.0.1:8080, http://[::1]:8080"
    assert site_addresses("http://127.0.0.1:8089").startswith("http://localhost:8089, ")
    assert site_addresses("https://knee.example.org") == "https://knee.example.org"


def _port_is_free(port: int) -> bool:
    """Whether a new server could listen on the port now (SO_REUSEADDR, as Caddy and uvicorn bind)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _offline_env(tmp_path: Path, unit: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN", "KNEESCOPE_MODEL_DIR")}
    for assignment in unit_values(unit, "Environment"):
        name, value = assignment.split("=", 1)
        env[name] = str(tmp_path / Path(value).name) if value.startswith("/var/lib/kneescope") else value
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the hub is unreachable
    return env


def _wait_for_page(url: str, process: subprocess.Popen, log: Path) -> httpx.Response:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, f"app.serve exited early:\n{log.read_text()[-3000:]}"
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200 and "KneeScope" in response.text:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not come up:\n{log.read_text()[-3000:]}")


def test_service_starts_offline_with_the_demo_model_and_sigterm_frees_caddys_ports(tmp_path):
    unit = unit_for_this_checkout()
    env = _offline_env(tmp_path, unit)
    (pre,) = unit_values(unit, "ExecStartPre")
    assert pre.startswith("-"), "a failed weights download must not stop the service from starting"
    started = time.monotonic()
    download = subprocess.run(shlex.split(pre[1:]), env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert download.returncode != 0 and "cannot reach" in download.stderr
    assert time.monotonic() - started < 60, "without network the download fails fast"

    site_port, admin_port, app_port = free_port(), free_port(), free_port()
    command = shlex.split(unit_values(unit, "ExecStart")[0])
    command[command.index("--site") + 1] = f"http://localhost:{site_port}"  # the operator's one edit
    command += ["--caddy-admin", f"localhost:{admin_port}", "--port", str(app_port)]
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        # Its own process group: whatever happens, the finally below leaves no Caddy behind.
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        page = _wait_for_page(f"http://127.0.0.1:{site_port}/", process, log)  # the site says localhost
        assert "Only the **demo model** is available" in page.text
        assert httpx.get(f"http://localhost:{site_port}/", timeout=10).status_code == 200
        assert "engine ready: demo" in log.read_text()

        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        while not (_port_is_free(site_port) and _port_is_free(admin_port)):
            assert time.monotonic() - stopped < 5.0, f"Caddy's ports still taken 5 s after SIGTERM:\n{log.read_text()}"
            time.sleep(0.1)
        assert process.wait(timeout=60) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_doctor_shows_where_each_model_is():
    from pipeline.doctor import check_weights
    from pipeline.weights import REPO_ROOT, weights_dir

    details = {check.name: check.detail for check in check_weights()}
    assert details["weights:demo"] == f"bundled ({REPO_ROOT / 'weights' / 'demo'})"
    assert details["weights:fullres"].endswith(f"({weights_dir()})")
