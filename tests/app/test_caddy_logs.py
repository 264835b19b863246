"""Session hashes kept out of Caddy's log (issue 25, item 4): its error lines name the request's URI, e.g. a heartbeat
cut off when the app restarts. Caddy runs with the project's deploy/Caddyfile in front of a port nobody listens on."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from app.serve import CADDYFILE, caddy_env, find_caddy
from tests.fixtures.app import free_port


def test_caddys_log_lines_carry_no_session_hash(tmp_path):
    try:
        caddy = find_caddy()
    except SystemExit as exc:
        pytest.skip(str(exc))
    port = free_port()
    (tmp_path / "snippets").mkdir()
    env = caddy_env(
        site=f"http://127.0.0.1:{port}",
        tls_internal=False,
        upstream=f"127.0.0.1:{free_port()}",  # nothing listens: every request is a logged error
        root_path="",
        max_upload_mb=16,
        data=tmp_path / "caddy",
        snippets=tmp_path / "snippets",
        admin="off",
    )
    log = tmp_path / "caddy.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"], env=env, stdout=out, stderr=out
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"{base}/gradio_api/heartbeat/s3cr3thash1", timeout=5).status_code == 502
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert httpx.get(f"{base}/gradio_api/queue/data?session_hash=s3cr3thash2&x=1", timeout=5).status_code == 502
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = log.read_text()
    assert "/gradio_api/heartbeat/…" in text and "session_hash=…&x=1" in text  # the lines are there, without hashes
    assert "s3cr3thash" not in text
