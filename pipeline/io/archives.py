"""Zip archives: unpacked into a private temporary folder with path, size, count and link guards, removed after."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import InvalidInputError

MAX_ZIP_MEMBERS = 20_000
#: What a zip may unpack to when no image limits say (the limits derive it from the largest image accepted).
MAX_ZIP_UNPACKED_BYTES = 8 * 1024**3
MAX_ZIP_RATIO = 200  # a higher compression ratio than this is treated as a zip bomb


def _safe_extract(archive: zipfile.ZipFile, target: Path, name: str, max_bytes: int) -> None:
    members = archive.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise InvalidInputError(f"{name}: {len(members)} files in the zip; at most {MAX_ZIP_MEMBERS} are accepted.")
    unpacked_bytes = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    if unpacked_bytes / packed > MAX_ZIP_RATIO:
        raise InvalidInputError(f"{name}: the zip would unpack to {unpacked_bytes / 1e9:.1f} GB; refused as unsafe.")
    if unpacked_bytes > max_bytes:
        raise InvalidInputError(
            f"{name}: the zip would unpack to {_size(unpacked_bytes)}, more than the largest knee series accepted "
            f"here ({_size(max_bytes)}). Zip one series only (no other files), or raise the image limits "
            "(KNEESCOPE_MAX_VOXELS)."
        )
    root = target.resolve()
    for member in members:
        destination = (target / member.filename).resolve()
        if not destination.is_relative_to(root) or member.filename.startswith(("/", "\\")):
            raise InvalidInputError(f"{name}: the zip contains an unsafe path '{member.filename}'; refused.")
        if member.is_dir():
            continue
        if (member.external_attr >> 16) & 0o170000 == 0o120000:
            raise InvalidInputError(f"{name}: the zip contains a symbolic link '{member.filename}'; refused.")
        destination.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as source, open(destination, "wb") as sink:
            shutil.copyfileobj(source, sink)


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


@contextlib.contextmanager
def unpacked(path: Path, *, max_bytes: int = MAX_ZIP_UNPACKED_BYTES) -> Iterator[Path]:
    """A zip's contents in a private temporary folder (path, size, count and link guards), removed afterwards.
    ``max_bytes``: what it may unpack to, judged from its directory before anything is written."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInputError(f"{path.name}: not a valid zip archive ({exc}).") from exc
    workdir = Path(tempfile.mkdtemp(prefix="kneescope-unzip-"))
    try:
        with archive:
            try:
                _safe_extract(archive, workdir, path.name, max_bytes)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
                raise InvalidInputError(f"{path.name}: the zip is damaged ({exc}).") from exc
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
