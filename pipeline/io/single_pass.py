"""A NIfTI, NRRD or MetaImage file read in one pass: header checked, data decompressed once, file hashed on the way.

SimpleITK fills a short data block with zeros without complaint, so truncation must be caught outside it; doing
that by decompressing once to count and letting ITK decompress again (and nibabel a third time for the header)
made a .nii.gz cost three full decompressions. Here a compressed file is streamed once: the first decompressed
bytes give the header (checked against the limits before any voxel is decoded), the rest goes into an uncompressed
twin in a private temporary folder while its length is counted (a short stream is a truncated file), and the raw
bytes feed the file's sha256 as they pass. ITK then reads the twin, which differs from the original only in its
encoding field, so geometry and pixel type come from ITK exactly as before. Memory stays at one chunk.

Forms the twin does not cover (detached or listed data files, a byte skip inside compressed data, line skips,
text encodings) are checked by the header module and read by ITK directly, as before.
"""

from __future__ import annotations

import bz2
import hashlib
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import InvalidInputError
from .headers import (
    CHUNK,
    NIFTI_HEADER_BYTES,
    VolumeHeader,
    check_complete,
    header_reader,
    parse_nifti_header,
    truncated_error,
)
from .limits import ImageLimits

TWIN_PREFIX = "kneescope-read-"


@dataclass(frozen=True)
class CheckedFile:
    """A volume file whose header passed the limits and whose data is complete.

    Attributes:
        readable: the file ITK should read: the original, or an uncompressed twin of it.
        header: what the header declares.
        sha256: the original file's sha256 (computed on the way when the file was streamed), or None.
    """

    readable: Path
    header: VolumeHeader | None
    sha256: str | None


@contextmanager
def checked_volume_file(path: Path, limits: ImageLimits) -> Iterator[CheckedFile]:
    """The file checked (limits from its header, completeness from its data) and ready for ITK; a compressed file
    is decompressed once into a temporary twin, removed on exit.

    Raises:
        InvalidInputError: unreadable header, over the limits, corrupt or truncated data.
    """
    if path.name.lower().endswith(".nii.gz"):
        with _twin_folder() as folder:
            yield _gzip_nifti(path, limits, folder)
        return
    reader = header_reader(path)
    if reader is None:
        yield CheckedFile(path, None, None)
        return
    header = reader(path)
    limits.check(header.size, path.name, header.spacing)
    rewrite = _header_rewrite(header, path)
    if rewrite is None:
        check_complete(header, path.name)
        yield CheckedFile(path, header, None)
        return
    with _twin_folder() as folder:
        yield _attached_compressed(path, header, rewrite, folder)


# --- one pass over a compressed stream -------------------------------------------------------------------------
def decompressor(compression: str) -> Any:
    """A fresh decoder: every decompression of a volume file starts here (the tests count the calls)."""
    if compression == "bzip2":
        return bz2.BZ2Decompressor()
    return zlib.decompressobj(47 if compression == "gzip" else zlib.MAX_WBITS)  # 47: gzip or zlib header


class _Stream:
    """The raw file read once: every byte hashed; the bytes from ``start`` on decompressed, in order."""

    def __init__(self, handle: IO[bytes], start: int, compression: str, name: str):
        self._handle, self._name = handle, name
        self._hash = hashlib.sha256()
        self._decoder = decompressor(compression)
        self._buffer = bytearray()
        self.ended = False  # the compressed stream reached its proper end
        self.produced = 0
        prefix = handle.read(start)
        self._hash.update(prefix)

    def read(self, n: int) -> bytes:
        """Up to ``n`` decompressed bytes (fewer only at the end of the stream)."""
        while len(self._buffer) < n and self._more():
            pass
        out, self._buffer = bytes(self._buffer[:n]), self._buffer[n:]
        self.produced += len(out)
        return out

    def copy_to(self, sink: IO[bytes], n: int) -> int:
        """Move up to ``n`` decompressed bytes into ``sink``; returns how many."""
        moved = 0
        while moved < n:
            block = self.read(min(CHUNK, n - moved))
            if not block:
                break
            sink.write(block)
            moved += len(block)
        return moved

    def sha256(self) -> str:
        """The whole file's sha256: the bytes not needed for the image are hashed, not decompressed."""
        while chunk := self._handle.read(CHUNK):
            self._hash.update(chunk)
        return self._hash.hexdigest()

    def _more(self) -> bool:
        """Decompress at most one chunk's worth more (a bomb never gets ahead of what is asked for)."""
        if self.ended:
            return False
        pending = self._decoder.unconsumed_tail if hasattr(self._decoder, "unconsumed_tail") else b""
        if not pending and not getattr(self._decoder, "needs_input", True):
            pending = b""  # bz2 still holds buffered output: ask for it with no new input
        elif not pending:
            pending = self._handle.read(CHUNK)
            self._hash.update(pending)
            if not pending:
                return False
        try:
            self._buffer += self._decoder.decompress(pending, CHUNK)
        except (zlib.error, OSError, EOFError, ValueError) as exc:
            raise InvalidInputError(f"{self._name}: the compressed image data is corrupt ({exc}).") from exc
        self.ended = bool(getattr(self._decoder, "eof", False))
        return True


# --- NIfTI (.nii.gz): the header is inside the compressed stream ------------------------------------------------
def _gzip_nifti(path: Path, limits: ImageLimits, folder: Path) -> CheckedFile:
    twin = folder / (path.name[: -len(".gz")] or "image.nii")
    with open(path, "rb") as handle:
        stream = _Stream(handle, 0, "gzip", path.name)
        try:
            head = stream.read(NIFTI_HEADER_BYTES)
        except InvalidInputError as exc:  # not gzip data at all: say what the file is not
            raise InvalidInputError(f"{path.name}: not a readable NIfTI file (its gzip data is corrupt).") from exc
        header = parse_nifti_header(head, path, "gzip")
        limits.check(header.size, path.name, header.spacing)
        expected = header.data_offset + header.payload_bytes
        with open(twin, "wb") as sink:
            sink.write(head[:expected])
            written = min(len(head), expected) + stream.copy_to(sink, expected - len(head))
        if written < expected:
            raise truncated_error(path.name, max(written - header.data_offset, 0), header.payload_bytes, header, True)
        return CheckedFile(twin, header, stream.sha256())


# --- NRRD and MetaImage with their compressed data attached ----------------------------------------------------
_NRRD_ENCODING = re.compile(rb"^encoding:[^\n]*$", re.IGNORECASE | re.MULTILINE)
_META_COMPRESSED = re.compile(rb"^\s*CompressedData\s*=[^\n]*$", re.IGNORECASE | re.MULTILINE)
_META_COMPRESSED_SIZE = re.compile(rb"^\s*CompressedDataSize\s*=[^\n]*\n", re.IGNORECASE | re.MULTILINE)


def _header_rewrite(header: VolumeHeader, path: Path):
    """How to turn the header text into its uncompressed twin's, or None when the file is read as it is."""
    if header.compression not in ("gzip", "bzip2", "zlib") or header.data_file != path:
        return None
    if header.format == "NRRD":
        return lambda text: _NRRD_ENCODING.sub(b"encoding: raw", text, count=1)
    if header.format == "MetaImage":
        return lambda text: _META_COMPRESSED.sub(b"CompressedData = False", _META_COMPRESSED_SIZE.sub(b"", text))
    return None


def _attached_compressed(path: Path, header: VolumeHeader, rewrite, folder: Path) -> CheckedFile:
    twin = folder / path.name
    with open(path, "rb") as handle:
        text = handle.read(header.data_offset)
        if header.format == "NRRD" and not text.endswith(
            (b"\n\n", b"\r\n\r\n")
        ):  # a byte skip inside compressed data: as it is
            check_complete(header, path.name)
            return CheckedFile(path, header, None)
        handle.seek(0)
        stream = _Stream(handle, header.data_offset, header.compression, path.name)
        with open(twin, "wb") as sink:
            sink.write(rewrite(text))
            written = stream.copy_to(sink, header.payload_bytes)
        if written < header.payload_bytes:
            raise truncated_error(path.name, written, header.payload_bytes, header, not stream.ended)
        return CheckedFile(twin, header, stream.sha256())


@contextmanager
def _twin_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=TWIN_PREFIX))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
