"""Reading images and label maps from what users have: NIfTI, NRRD, MHA, DICOM folders, zips, multi-frame DICOM.

Everything comes back as a :class:`~pipeline.volume.Volume` with the geometry read from the file.
Archives are unpacked into a private temporary folder with path, size and count guards, and removed after.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import dicom
from .errors import InvalidInputError
from .labels import CANONICAL, LabelScheme, resolve_scheme
from .volume import Volume

logger = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
MIN_SIZE = 10
MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_UNPACKED_BYTES = 8 * 1024**3
MAX_ZIP_RATIO = 200  # a higher compression ratio than this is treated as a zip bomb


def file_stem(path: Path) -> str:
    """Name without the medical-image suffix ('knee.nii.gz' -> 'knee')."""
    name = Path(path).name
    for suffix in (*VOLUME_SUFFIXES, ".zip", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "case"
    return name or "case"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def image_kind(path: str | Path) -> str:
    """'folder', 'zip', 'volume' or 'dicom' for an image input, without reading it; an error for anything else.

    Cheap, so callers can refuse a wrong upload before loading a model.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path.name}: no such file or folder.")
    if path.is_dir():
        return "folder"
    if path.name.lower().endswith(".zip"):
        return "zip"
    if path.name.lower().endswith(VOLUME_SUFFIXES):
        return "volume"
    if dicom.is_dicom_file(path):
        return "dicom"
    raise InvalidInputError(
        f"{path.name}: unsupported file type. Use NIfTI (.nii/.nii.gz), NRRD, MHA, a zip of one DICOM series, "
        "or a single multi-frame DICOM."
    )


def load_image(path: str | Path) -> Volume:
    """Read a knee MRI from a file, a DICOM folder or a zip. Raises InvalidInputError with the reason."""
    path = Path(path)
    name = path.name
    readers = {
        "folder": lambda: dicom.read_single_series(path, name=name),
        "zip": lambda: _load_zip(path),
        "volume": lambda: _read_with_sitk(path),
        "dicom": lambda: _load_single_dicom(path),
    }
    volume = readers[image_kind(path)]()
    _check_3d(volume, name)
    return _with_source(volume, path)


def _with_source(volume: Volume, path: Path) -> Volume:
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    meta = {**volume.meta, "file_name": path.name, "file_size_bytes": int(size), "sha256": sha256_of(path)}
    return Volume(volume.array, volume.spacing, volume.origin, volume.direction, meta=meta)


def _read_with_sitk(path: Path) -> Volume:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise InvalidInputError(f"{path.name}: not a readable {_kind(path)} file ({reason}). Is it complete?") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidInputError(
            f"{path.name}: has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
            "expected a grey-scale MRI or a label map."
        )
    if image.GetDimension() == 4:
        size = image.GetSize()
        if size[3] != 1:
            raise InvalidInputError(f"{path.name}: a 4-D image with {size[3]} volumes; save the one volume to analyse.")
        image = image[:, :, :, 0]
    if image.GetDimension() != 3:
        raise InvalidInputError(f"{path.name}: a {image.GetDimension()}-D image; KneeScope needs a 3-D knee MRI.")
    return Volume.from_sitk(image, source_format=_kind(path))


def _kind(path: Path) -> str:
    lower = path.name.lower()
    if lower.endswith((".nii", ".nii.gz")):
        return "NIfTI"
    if lower.endswith((".nrrd", ".nhdr")):
        return "NRRD"
    if lower.endswith((".mha", ".mhd")):
        return "MetaImage"
    return "DICOM"


def _check_3d(volume: Volume, name: str) -> None:
    small = [n for n in volume.size if n < MIN_SIZE]
    if len(small) > 1 or min(volume.size) < 2:
        raise InvalidInputError(
            f"{name}: image size {volume.size} is too small for a 3-D knee MRI "
            f"(at least {MIN_SIZE} voxels along each axis)."
        )
    if small:
        raise InvalidInputError(
            f"{name}: only {min(volume.size)} slices (size {volume.size}); a 3-D knee MRI needs "
            f"at least {MIN_SIZE}. Is this a single slice or a localiser?"
        )


def _load_single_dicom(path: Path) -> Volume:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:
        raise InvalidInputError(f"{path.name}: not a readable DICOM file ({exc}).") from exc
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames < 2:
        raise InvalidInputError(
            f"{path.name} is a single 2-D DICOM slice. Upload the whole series as one zip (or a multi-frame DICOM)."
        )
    return dicom._read_multiframe(path, name=path.name)


def _safe_extract(archive: zipfile.ZipFile, target: Path, name: str) -> None:
    members = archive.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise InvalidInputError(f"{name}: {len(members)} files in the zip; at most {MAX_ZIP_MEMBERS} are accepted.")
    unpacked = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    if unpacked > MAX_ZIP_UNPACKED_BYTES or unpacked / packed > MAX_ZIP_RATIO:
        raise InvalidInputError(f"{name}: the zip would unpack to {unpacked / 1e9:.1f} GB; refused as unsafe.")
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


@contextlib.contextmanager
def unpacked(path: Path) -> Iterator[Path]:
    """A zip's contents in a private temporary folder (path, size, count and link guards), removed afterwards."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInputError(f"{path.name}: not a valid zip archive ({exc}).") from exc
    workdir = Path(tempfile.mkdtemp(prefix="kneescope-unzip-"))
    try:
        with archive:
            try:
                _safe_extract(archive, workdir, path.name)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
                raise InvalidInputError(f"{path.name}: the zip is damaged ({exc}).") from exc
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _load_zip(path: Path) -> Volume:
    name = path.name
    with unpacked(path) as workdir:
        volumes = sorted(
            p
            for p in workdir.rglob("*")
            if p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES) and not p.name.startswith("._")
        )
        has_dicom = any(dicom.is_dicom_file(p) for p in workdir.rglob("*") if p.is_file())
        if has_dicom:
            volume = dicom.read_single_series(workdir, name=name)
        elif len(volumes) == 1:
            volume = _read_with_sitk(volumes[0])
        elif len(volumes) > 1:
            listed = ", ".join(p.name for p in volumes[:10])
            raise InvalidInputError(f"{name} holds {len(volumes)} images ({listed}); upload one image per job.")
        else:
            raise InvalidInputError(
                f"{name}: no DICOM series or NIfTI/NRRD/MHA image found inside. Zip the folder of one DICOM series."
            )
        return Volume(
            volume.array, volume.spacing, volume.origin, volume.direction, meta={**volume.meta, "archive": name}
        )


@dataclass(frozen=True)
class LoadedLabels:
    """A label map converted to the canonical scheme, and what the conversion found."""

    volume: Volume
    scheme: LabelScheme
    ignored_values: dict[int, int]  # value -> voxel count, for values the scheme does not name


def to_canonical(volume: Volume, scheme: LabelScheme | str, *, name: str = "label map") -> LoadedLabels:
    """Remap a label map to canonical values; values the scheme does not name become background."""
    scheme = resolve_scheme(scheme)
    data = volume.array
    if not np.issubdtype(data.dtype, np.integer):
        rounded = np.rint(data)
        if not np.allclose(data, rounded, atol=1e-3):
            raise InvalidInputError(
                f"{name} holds non-integer values (e.g. {float(data.flat[np.argmax(np.abs(data - rounded))]):.3f}); "
                "is it an MRI rather than a segmentation? Give the label map with --labels."
            )
        data = rounded
    data = data.astype(np.int64, copy=False)
    if data.min() < 0 or data.max() > 65535:
        raise InvalidInputError(f"{name}: label values range {data.min()}..{data.max()}; expected 0..255 labels.")
    counts = np.bincount(data.ravel())
    present = {int(v): int(c) for v, c in enumerate(counts) if c and v}
    lut = np.zeros(len(counts), dtype=np.uint8)
    table = scheme.remap_table()
    for value, canonical in table.items():
        if value < len(lut):
            lut[value] = canonical
    ignored = {v: c for v, c in present.items() if v not in table}
    out = lut[data]
    meta = {**volume.meta, "label_scheme": scheme.name}
    return LoadedLabels(Volume(out, volume.spacing, volume.origin, volume.direction, meta=meta), scheme, ignored)


def load_label_map(path: str | Path, scheme: LabelScheme | str) -> LoadedLabels:
    """Read a NIfTI/NRRD/MHA label map and convert it to the canonical scheme."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path.name}: label map not found.")
    if not path.name.lower().endswith(LABEL_SUFFIXES):
        raise InvalidInputError(f"{path.name}: label maps must be NIfTI (.nii/.nii.gz), NRRD (.nrrd) or MHA (.mha).")
    volume = _with_source(_read_with_sitk(path), path)
    _check_3d(volume, path.name)
    return to_canonical(volume, scheme, name=path.name)


def write_volume(volume: Volume, path: str | Path, *, compress: bool = True) -> Path:
    """Write with SimpleITK (format from the suffix). Geometry is written in double precision for NRRD."""
    import SimpleITK as sitk

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume.to_sitk(), str(path), compress)
    return path


def canonical_names() -> dict[int, str]:
    return {v: k for k, v in CANONICAL.items()}
