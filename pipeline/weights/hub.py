"""The Hugging Face Hub: the local cache (offline) and downloads, after one quick reachability check."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
from pathlib import Path
from urllib.parse import urlparse

from ..errors import WeightsUnavailableError
from .manifest import ModelEntry, how_to_fix, hub_endpoint

logger = logging.getLogger(__name__)

REACHABILITY_TIMEOUT_S = 2.0


def cached_snapshot(entry: ModelEntry, cache_dir: Path) -> Path | None:
    """The cached snapshot folder for the entry's revision, without touching the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = snapshot_download(
            entry.repo_id,
            revision=entry.revision,
            cache_dir=str(cache_dir),
            allow_patterns=list(entry.allow_patterns),
            local_files_only=True,
        )
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        logger.debug("No cached snapshot of %s@%s: %s", entry.repo_id, entry.revision, exc)
        return None
    folder = Path(path)
    # A snapshot folder can lack this model's files (another model of the same repo was fetched, or a download
    # was interrupted): then it does not count, and a download (which resumes) fills it in.
    if not all(_matches(folder, pattern) for pattern in entry.allow_patterns):
        return None
    return folder


def _matches(base: Path, pattern: str) -> bool:
    return any(base.glob(pattern))


def download(entry: ModelEntry, cache_dir: Path) -> Path:
    from huggingface_hub import get_token, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError

    if entry.gated and not get_token():
        raise WeightsUnavailableError(gated_message(entry))
    endpoint = hub_endpoint()
    problem = check_reachable(endpoint)
    if problem:
        raise WeightsUnavailableError(
            f"Cannot download model '{entry.name}': {problem}. This machine has no route to the Hugging Face Hub. "
            + how_to_fix(entry, "hub-cache")
        )
    logger.info(
        "Downloading %s@%s (%s, about %s MB) into %s",
        entry.repo_id,
        entry.revision,
        ", ".join(entry.allow_patterns),
        entry.approx_size_mb,
        cache_dir,
    )
    try:
        path = snapshot_download(
            entry.repo_id,
            revision=entry.revision,
            cache_dir=str(cache_dir),
            allow_patterns=list(entry.allow_patterns),
            endpoint=endpoint,
        )
    except GatedRepoError as exc:
        raise WeightsUnavailableError(gated_message(entry) + f" (Hub said: {exc})") from exc
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise WeightsUnavailableError(
            f"Downloading model '{entry.name}' from {entry.repo_id}@{entry.revision} failed: {exc}. "
            "Check the network and disk space, then run `python -m pipeline weights download "
            f"{entry.name}` again."
        ) from exc
    return Path(path)


def gated_message(entry: ModelEntry) -> str:
    return (
        f"Model '{entry.name}' comes from the gated repository {entry.repo_id}. To get access: log in at "
        f"huggingface.co, open https://huggingface.co/{entry.repo_id} and accept its terms ({entry.licence}), "
        "create a read token at https://huggingface.co/settings/tokens, then set HF_TOKEN=<token> (or run "
        f"`hf auth login`) and run `python -m pipeline weights download {entry.name}`."
    )


def check_reachable(endpoint: str, timeout_s: float = REACHABILITY_TIMEOUT_S) -> str | None:
    """None if the endpoint (or the HTTPS proxy) completes a TCP + TLS handshake within ``timeout_s``, else why not.

    A bare TCP connect is not enough: sandboxes and captive networks accept any connection and then stay silent.
    DNS lookups are not covered by socket timeouts, so the attempt runs in a daemon thread that is abandoned
    when the time is up.
    """
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s) as sock:
                if url.scheme == "https" and not proxy:
                    context = ssl.create_default_context()
                    with context.wrap_socket(sock, server_hostname=host):
                        pass
            outcome.append(None)
        except (OSError, ssl.SSLError) as exc:
            outcome.append(f"cannot reach {host}:{port} ({exc.__class__.__name__}: {exc})")

    thread = threading.Thread(target=attempt, daemon=True, name="hub-reachability")
    thread.start()
    thread.join(timeout_s + 0.5)
    return outcome[0] if outcome else f"cannot reach {host}:{port} (no answer within {timeout_s:g} s)"
