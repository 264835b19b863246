"""Header-only checks of NIfTI, NRRD and MetaImage files, before SimpleITK decodes a voxel (``single_pass`` runs
them while it reads a file once).

Two defects are caught here, for every format and whatever calls the reader (CLI, app, notebook, cohort):

* **Memory bombs**: the declared size is checked against :class:`~pipeline.io.limits.ImageLimits` from the header
  alone, so an 892 kB file that decodes to 512^3 voxels is refused in milliseconds.
* **Truncation**: SimpleITK fills a short data block with zeros without complaint. The payload is measured against
  what the header declares (the file size for raw data; a streaming, memory-free decompression for gzip, zlib and
  bzip2), so a cut-off file is refused with the byte counts instead of being analysed with empty slices.
"""

from __future__ import annotations

import bz2
import io
import math
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import InvalidInputError

CHUNK = 1 << 20
PIXEL_DATA = 0x7FE00010  # the DICOM (7FE0,0010) Pixel Data tag
MAX_TEXT_HEADER = 1 << 16

NRRD_TYPE_BYTES = {
    1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t", "char"),
    2: (
        "short",
        "short int",
        "signed short",
        "signed short int",
        "int16",
        "int16_t",
        "ushort",
        "unsigned short",
        "unsigned short int",
        "uint16",
        "uint16_t",
    ),
    4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
    8: (
        "longlong",
        "long long",
        "long long int",
        "signed long long",
        "signed long long int",
        "int64",
        "int64_t",
        "ulonglong",
        "unsigned long long",
        "unsigned long long int",
        "uint64",
        "uint64_t",
        "double",
    ),
}
META_TYPE_BYTES = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 4,
    "MET_ULONG": 4,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}


@dataclass(frozen=True)
class VolumeHeader:
    """What a file's header declares.

    Attributes:
        format: 'NIfTI', 'NRRD' or 'MetaImage'.
        size: voxels per axis, in file order (channels/components counted in ``voxel_bytes``).
        voxel_bytes: bytes per voxel, all components.
        data_file: the file holding the voxels (the header's own file unless detached).
        data_offset: where the payload starts in the (decompressed, for NIfTI .gz) stream or data file.
        compression: 'none', 'gzip', 'zlib', 'bzip2' or 'unchecked' (text encodings, file lists).
        stream_includes_header: the compressed stream holds the header too (.nii.gz).
        spacing: voxel size per spatial axis (mm, file order) as the header states it, None when it does not.
    """

    format: str
    size: tuple[int, ...]
    voxel_bytes: int
    data_file: Path
    data_offset: int
    compression: str
    stream_includes_header: bool = False
    spacing: tuple[float, ...] | None = None

    @property
    def payload_bytes(self) -> int:
        return math.prod(self.size) * self.voxel_bytes


def header_reader(path: Path) -> Callable[[Path], VolumeHeader] | None:
    lower = path.name.lower()
    if lower.endswith((".nii", ".nii.gz")):
        return read_nifti_header
    if lower.endswith((".nrrd", ".nhdr")):
        return read_nrrd_header
    if lower.endswith((".mha", ".mhd")):
        return read_meta_header
    return None


# --- completeness ----------------------------------------------------------------------------------------------
def check_complete(header: VolumeHeader, name: str) -> None:
    """Raise when the data holds fewer bytes than the header declares."""
    expected = header.payload_bytes + (header.data_offset if header.stream_includes_header else 0)
    if header.compression == "unchecked":
        return
    if not header.data_file.is_file():
        raise InvalidInputError(f"{name}: its data file {header.data_file.name} is missing; upload both files.")
    if header.compression == "none":
        available = header.data_file.stat().st_size - header.data_offset
        if available < header.payload_bytes:
            raise truncated_error(name, max(available, 0), header.payload_bytes, header)
        return
    start = 0 if header.stream_includes_header else header.data_offset
    got, complete = _decompressed_length(header.data_file, start, header.compression, limit=expected)
    if got < expected or not complete:
        if header.stream_includes_header:
            got, expected = max(got - header.data_offset, 0), header.payload_bytes
        raise truncated_error(name, min(got, expected), expected, header, not complete)


def truncated_error(
    name: str, got: int, expected: int, header: VolumeHeader, stream: bool = False
) -> InvalidInputError:
    """The refusal of a file holding fewer bytes of image data than its header declares."""
    what = f"the {header.compression} stream ends early; " if stream else ""
    return InvalidInputError(
        f"{name}: file is truncated: {what}{got:,} bytes of image data of {expected:,} expected for a "
        f"{' x '.join(map(str, header.size))} {header.format} image. Copy or export the file again."
    )


def _decompressed_length(path: Path, offset: int, compression: str, *, limit: int) -> tuple[int, bool]:
    """Bytes the compressed stream from ``offset`` decodes to (counting stops past ``limit``) and whether the
    stream ended properly. Nothing is kept in memory beyond one chunk."""
    decoder = (
        bz2.BZ2Decompressor()
        if compression == "bzip2"
        else zlib.decompressobj(47 if compression == "gzip" else zlib.MAX_WBITS)
    )  # 47: gzip or zlib header, detected
    total = 0
    with open(path, "rb") as handle:
        handle.seek(offset)
        while total <= limit:
            chunk = handle.read(CHUNK)
            if not chunk:
                return total, False
            try:
                total += len(decoder.decompress(chunk, CHUNK * 64))
                while (tail := getattr(decoder, "unconsumed_tail", b"")) and total <= limit:
                    total += len(decoder.decompress(tail, CHUNK * 64))
            except (zlib.error, OSError, EOFError) as exc:
                raise InvalidInputError(f"{path.name}: the compressed image data is corrupt ({exc}).") from exc
            if decoder.eof:
                return total, True
    return total, True  # enough data for the header's size; the rest is not needed


# --- NIfTI -----------------------------------------------------------------------------------------------------
#: Bytes of a NIfTI-1 header and its extension flag: what is parsed (ITK reads no NIfTI-2).
NIFTI_HEADER_BYTES = 352


def read_nifti_header(path: Path) -> VolumeHeader:
    """An uncompressed .nii's header (a .nii.gz is parsed from its decompressed stream by ``single_pass``)."""
    with open(path, "rb") as handle:
        head = handle.read(NIFTI_HEADER_BYTES)
    return parse_nifti_header(head, path, "none")


def parse_nifti_header(head: bytes, path: Path, compression: str) -> VolumeHeader:
    """The header in ``head`` as stored: nibabel's checks are off, so a zero or negative pixdim reaches the spacing
    check instead of being quietly set to 1 mm."""
    from nibabel.nifti1 import Nifti1Header

    try:
        header: Any = Nifti1Header.from_fileobj(io.BytesIO(head), check=False)
        shape = tuple(int(n) for n in header.get_data_shape())
        itemsize = int(header.get_data_dtype().itemsize)
        offset = int(header.get_data_offset())
        spacing = nifti_spacing(header)
    except Exception as exc:  # nibabel raises many kinds for a bad header: all mean the same to the user
        reason = "empty file" if not head else str(exc).splitlines()[0][:120]
        raise InvalidInputError(f"{path.name}: not a readable NIfTI file ({reason}). Is it complete?") from exc
    return VolumeHeader(
        "NIfTI",
        shape,
        itemsize,
        path,
        offset,
        compression,
        stream_includes_header=compression != "none",
        spacing=spacing,
    )


def nifti_spacing(header: Any) -> tuple[float, ...]:
    """pixdim[1..3] as stored (nibabel's zooms), up to three spatial axes."""
    dims = int(header["dim"][0])
    return tuple(float(v) for v in header["pixdim"][1 : 1 + min(max(dims, 0), 3)])


# --- NRRD ------------------------------------------------------------------------------------------------------
def _text_header(path: Path, magic: bytes, end: Callable[[bytes], bool]) -> tuple[list[str], int]:
    """Header lines up to the one for which ``end`` is true, and the byte offset just after it."""
    with open(path, "rb") as handle:
        head = handle.read(MAX_TEXT_HEADER)
    if not head.startswith(magic):
        raise InvalidInputError(f"{path.name}: not a readable file of its type (it does not start with {magic!r}).")
    lines: list[bytes] = []
    offset = 0
    for raw in head.splitlines(keepends=True):
        offset += len(raw)
        line = raw.rstrip(b"\r\n")
        if end(line):
            return [x.decode("latin-1") for x in lines] + [line.decode("latin-1")], offset
        lines.append(line)
    if len(head) < MAX_TEXT_HEADER:  # a header file with nothing after it (.nhdr, .mhd)
        return [x.decode("latin-1") for x in lines], offset
    raise InvalidInputError(f"{path.name}: its header is longer than {MAX_TEXT_HEADER} bytes; the file is corrupt.")


def read_nrrd_header(path: Path) -> VolumeHeader:
    lines, offset = _text_header(path, b"NRRD000", lambda line: line == b"")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line.startswith("#") or ":" not in line or ":=" in line:
            continue
        key, value = line.split(":", 1)
        fields[key.strip().lower()] = value.strip()
    try:
        size = tuple(int(n) for n in fields["sizes"].split())
        kind = fields["type"].lower()
    except (KeyError, ValueError) as exc:
        raise InvalidInputError(
            f"{path.name}: not a readable NRRD file (its header lacks a valid 'sizes' or 'type' field)."
        ) from exc
    voxel_bytes = next((n for n, names in NRRD_TYPE_BYTES.items() if kind in names), 0)
    if kind == "block":
        voxel_bytes = int(fields.get("block size", fields.get("blocksize", "0")) or 0)
    encoding = fields.get("encoding", "raw").lower()
    compression = {"raw": "none", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}.get(encoding)
    field_name = "data file" if "data file" in fields else "datafile"
    data_file = fields.get(field_name)
    detached = data_file is not None and data_file.upper() != "LOCAL"
    if detached and data_file is not None:
        listed = lines[next(i for i, line in enumerate(lines) if _is_field(line, field_name)) + 1 :]
        names = data_file_names(data_file, listed, path.name, f"{field_name}:")
        detached = len(names) == 1 and data_file.split()[0].upper() != "LIST"
        for name in names:
            confined_data_file(path, name, f"{field_name}:")
        if not detached:
            compression = None  # a list or pattern of data files: only the size limit applies
    target = confined_data_file(path, data_file, f"{field_name}:") if detached and data_file else path
    skip = int(fields.get("byte skip", fields.get("byteskip", "0")) or 0)
    data_offset = (skip if skip >= 0 else 0) if detached else offset + max(skip, 0)
    if voxel_bytes == 0 or compression is None or int(fields.get("line skip", fields.get("lineskip", "0")) or 0):
        compression = "unchecked"
    return VolumeHeader("NRRD", size, voxel_bytes or 1, target, data_offset, compression, spacing=_nrrd_spacing(fields))


def _nrrd_spacing(fields: dict[str, str]) -> tuple[float, ...] | None:
    """Spatial voxel sizes: the lengths of 'space directions' (skipping 'none' axes), else 'spacings'."""
    directions = fields.get("space directions")
    try:
        if directions:
            vectors = re.findall(r"\(([^)]*)\)", directions)
            return tuple(math.sqrt(sum(float(x) ** 2 for x in v.split(","))) for v in vectors) or None
        if "spacings" in fields:
            values = [float(v) for v in fields["spacings"].split()]
            return tuple(v for v in values if not math.isnan(v)) or None
    except ValueError:
        return (math.nan,)  # unreadable numbers: refused as a damaged geometry
    return None


# --- MetaImage -------------------------------------------------------------------------------------------------
def read_meta_header(path: Path) -> VolumeHeader:
    lines, offset = _text_header(
        path, b"", lambda line: line.replace(b" ", b"").lower().startswith(b"elementdatafile=")
    )
    fields: dict[str, str] = {}
    for line in lines:
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip().lower()] = value.strip()
    try:
        size = tuple(int(n) for n in fields["dimsize"].split())
        element = fields["elementtype"].upper()
        data_file = fields["elementdatafile"]
    except (KeyError, ValueError) as exc:
        raise InvalidInputError(
            f"{path.name}: not a readable MetaImage file (DimSize, ElementType or ElementDataFile missing)."
        ) from exc
    channels = int(fields.get("elementnumberofchannels", "1") or 1)
    voxel_bytes = META_TYPE_BYTES.get(element, 0) * channels
    compressed = fields.get("compresseddata", "false").lower() == "true"
    compression = "zlib" if compressed else "none"
    header_size = int(fields.get("headersize", "0") or 0)
    if data_file.upper() == "LOCAL":
        target, data_offset = path, offset
    elif " " in data_file or data_file.upper().startswith("LIST"):
        for name in data_file_names(data_file, _lines_after(path, offset), path.name, "ElementDataFile"):
            confined_data_file(path, name, "ElementDataFile")
        target, data_offset, compression = path, 0, "unchecked"
    else:
        target = confined_data_file(path, data_file, "ElementDataFile")
        data_offset = max(header_size, 0)
        if header_size == -1 and not compressed:  # -1: the data is at the end of the file
            data_offset = max(target.stat().st_size - math.prod(size) * voxel_bytes, 0) if target.is_file() else 0
    if voxel_bytes == 0:
        compression = "unchecked"
    spacing_text = fields.get("elementspacing", fields.get("elementsize"))
    try:
        spacing = tuple(float(v) for v in spacing_text.split()) if spacing_text else None
    except ValueError:
        spacing = (math.nan,)  # unreadable numbers: refused as a damaged geometry
    return VolumeHeader("MetaImage", size, voxel_bytes or 1, target, data_offset, compression, spacing=spacing)


# --- detached data files ---------------------------------------------------------------------------------------
#: Most files a LIST or pattern of data files may name (a knee series has a few hundred slices at most).
MAX_LISTED_DATA_FILES = 10_000


def confined_data_file(header: Path, name: str, field: str) -> Path:
    """The data file a header names, which must lie in the header's own folder (or below it), named relatively.

    A header is text the uploader wrote: without this rule ``ElementDataFile = /etc/passwd`` (or ``../x``) makes
    the server read, and show as an image, any file it can read. Applies to uploads, archives, the CLI and batch.
    """
    shown = name if len(name) <= 80 else name[:77] + "..."
    posix = PurePosixPath(name.replace("\\", "/"))
    if not name or posix.is_absolute() or ".." in posix.parts or ":" in posix.parts[0] or name.startswith("~"):
        raise InvalidInputError(
            f"{header.name}: its header field '{field}' names a data file outside the header's folder ('{shown}'). "
            "Only a file beside the header, named without folders above it, is read: put the data file next to "
            "the header (in the same upload or zip) and name it relatively."
        )
    target = header.parent / Path(*posix.parts)
    if not target.resolve().is_relative_to(header.parent.resolve()):  # a link that leads out of the folder
        raise InvalidInputError(
            f"{header.name}: its header field '{field}' names a data file ('{shown}') that leads outside the "
            "header's folder; refused. Put the data file itself next to the header."
        )
    return target


def data_file_names(value: str, following: list[str], name: str, field: str) -> list[str]:
    """Every file a data-file field names: one file, a LIST (names on the lines after it), or a printf pattern
    'name%03d.raw MIN MAX STEP [subdim]' (NRRD and MetaImage use the same three forms)."""
    parts = value.split()
    if parts and parts[0].upper() == "LIST":
        listed = [line.strip() for line in following if line.strip()]
        if len(listed) > MAX_LISTED_DATA_FILES:
            raise InvalidInputError(f"{name}: its header field '{field}' lists {len(listed)} data files; refused.")
        return listed
    if len(parts) < 4:
        return [value]
    try:
        first, last, step = (int(p) for p in parts[1:4])
        count = 0 if step == 0 else (last - first) // step + 1
        if not 0 < count <= MAX_LISTED_DATA_FILES:
            raise ValueError(count)
        return [parts[0] % index for index in range(first, last + (1 if step > 0 else -1), step)]
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"{name}: its header field '{field}' is neither a file name, a LIST nor a valid file-name pattern."
        ) from exc


def _is_field(line: str, field: str) -> bool:
    return ":" in line and line.split(":", 1)[0].strip().lower() == field


def _lines_after(path: Path, offset: int) -> list[str]:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(MAX_TEXT_HEADER).decode("latin-1").splitlines()


# --- DICOM ------------------------------------------------------------------------------------------------------
def check_pixel_data_complete(path: Path, ds: Any, name: str) -> None:
    """A file whose pixel data is shorter than its header declares is truncated: name it."""
    if PIXEL_DATA not in ds:
        raise InvalidInputError(f"{name}: the DICOM file {path.name} has no pixel data; re-export the series.")
    element = ds.get_item(PIXEL_DATA, keep_deferred=True)  # the raw element: length and offset, value not read
    length = getattr(element, "length", None)
    tell = getattr(element, "value_tell", None)
    if length is None or tell is None:  # already decoded: its value holds what the file had
        value = getattr(element, "value", None)
        length, tell, present = _declared_pixel_bytes(ds), 0, len(value) if value is not None else 0
    elif length == 0xFFFFFFFF:
        return  # encapsulated (compressed) pixel data: the decoder checks it
    else:
        present = os.path.getsize(path) - tell
    expected = max(length or 0, _declared_pixel_bytes(ds))
    if present < expected:
        raise InvalidInputError(
            f"{name}: the DICOM file {path.name} is truncated: {max(present, 0):,} of {expected:,} bytes of pixel "
            "data present. Copy or export the series again."
        )


def _declared_pixel_bytes(ds: Any) -> int:
    """Bytes of uncompressed pixel data the header describes (0 when it does not say)."""
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        bits = int(getattr(ds, "BitsAllocated", 16) or 16)
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return 0
    return rows * columns * samples * frames * bits // 8
