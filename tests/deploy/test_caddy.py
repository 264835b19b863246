"""Deployment: the shipped Caddyfile in front of the app, over HTTPS (Caddy's internal CA), on a sub-path."""

from __future__ import annotations

import base64
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from app.serve import CADDYFILE, caddy_env, find_caddy, write_basic_auth
from tests.fixtures import REPO
from tests.fixtures.app import free_port, running_app

ROOT = REPO


def _env(tmp_path: Path, **overrides) -> dict[str, str]:
    values = {
        "site": "http://localhost:8080",
        "tls_internal": False,
        "upstream": "127.0.0.1:7860",
        "root_path": "",
        "max_upload_mb": 1024,
        "data": tmp_path / "caddy",
        "snippets": tmp_path / "snippets",
        "admin": "off",
    }
    values.update(overrides)
    (tmp_path / "snippets").mkdir(exist_ok=True)
    return caddy_env(**values)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"site": "https://lab.example.org"}, {"site": "https://10.0.0.5", "tls_internal": True, "root_path": "/knee"}],
    ids=["localhost-http", "public-domain", "lan-subpath"],
)
def test_caddyfile_validates(tmp_path, overrides):
    proc = subprocess.run(
        [find_caddy(), "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env=_env(tmp_path, **overrides),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-1500:]


def _wait_for(url: str, **kwargs) -> httpx.Response:
    deadline = time.time() + 30
    while True:
        try:
            return httpx.get(url, timeout=5, **kwargs)
        except httpx.HTTPError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """The app on 127.0.0.1 under /knee, Caddy with `tls internal` and basic auth in front of it."""
    tmp = tmp_path_factory.mktemp("deploy")
    with running_app(tmp / "work", root_path="/knee", max_upload_mb=2) as (app_url, _):
        app_port = int(app_url.rstrip("/").rsplit(":", 1)[1].split("/")[0])
        https_port = free_port()
        env = _env(
            tmp,
            site=f"https://127.0.0.1:{https_port}",
            tls_internal=True,
            upstream=f"127.0.0.1:{app_port}",
            root_path="/knee",
            max_upload_mb=2,
        )
        write_basic_auth(find_caddy(), tmp / "snippets", "alice:s3cret-pass")
        caddy = subprocess.Popen(
            [find_caddy(), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"https://127.0.0.1:{https_port}/knee/"
            ca = tmp / "caddy" / "pki" / "authorities" / "local" / "root.crt"
            _wait_for(base, verify=False)
            yield {"base": base, "ca": ca, "app_port": app_port, "auth": ("alice", "s3cret-pass")}
        finally:
            caddy.terminate()
            caddy.wait(timeout=30)


def test_page_over_https_with_caddys_ca_and_headers(proxied):
    response = httpx.get(proxied["base"], verify=str(proxied["ca"]), auth=proxied["auth"], timeout=10)
    assert response.status_code == 200 and "KneeScope" in response.text
    headers = response.headers
    assert headers["strict-transport-security"].startswith("max-age=")
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "SAMEORIGIN"
    assert "server" not in headers


def test_basic_auth_at_the_proxy(proxied):
    response = httpx.get(proxied["base"], verify=str(proxied["ca"]), timeout=10)
    assert response.status_code == 401


@pytest.fixture(scope="module")
def example_through_the_proxy(proxied):
    """(a logged-in page client, its outputs) of one example run through the proxy, shared by the tests below."""
    from gradio_client import Client

    token = base64.b64encode(":".join(proxied["auth"]).encode()).decode()
    client = Client(proxied["base"], ssl_verify=False, headers={"Authorization": f"Basic {token}"}, verbose=False)
    return client, client.predict("(none: analysis of label maps only)", False, 0.5, False, api_name="/example")


def test_a_job_streams_through_the_proxy(example_through_the_proxy):
    _, out = example_through_the_proxy
    assert "<strong>Done</strong>" in out[0]  # the status area's result banner


def test_upload_over_the_limit_is_refused_by_caddy(proxied):
    body = b"\0" * (19 * 1024 * 1024)  # the proxy allows the app's 2 MB plus 16 MB of form overhead
    response = httpx.post(
        proxied["base"] + "gradio_api/upload",
        files={"files": ("big.nrrd", body)},
        verify=str(proxied["ca"]),
        auth=proxied["auth"],
        timeout=60,
    )
    assert response.status_code == 413


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent; this only picks the outward interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_app_is_not_reachable_directly(proxied):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback interface on this host")
    with pytest.raises(OSError), socket.create_connection((address, proxied["app_port"]), timeout=3):
        pass


def test_interactive_viewer_through_the_proxy(proxied, example_through_the_proxy):
    """The app starts a trame viewer for the job; its route <root>/viewer/<token>/ is the app's own, so Caddy passes
    it like any page of the app, behind the same auth."""
    client, _ = example_through_the_proxy
    link = client.predict(api_name="/viewer")
    assert 'href="viewer/' in link
    url = proxied["base"] + link.split('href="')[1].split('"')[0]
    page = httpx.get(url, verify=str(proxied["ca"]), auth=proxied["auth"], timeout=30, follow_redirects=True)
    assert page.status_code == 200 and "trame" in page.text.lower()
    assert httpx.get(url, verify=str(proxied["ca"]), timeout=30).status_code == 401
