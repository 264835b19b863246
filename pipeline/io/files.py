"""Reading images from what users have: NIfTI, NRRD, MHA files, DICOM folders, zips, multi-frame DICOM.

Everything comes back as a :class:`~pipeline.volume.Volume` with the geometry read from the file. Every reader
checks the declared size against the limits and the data against the declared size (``headers``, ``dicom``) before
decoding voxels, so a memory bomb or a truncated file is refused with a specific message.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from ..errors import InvalidInputError
from ..volume import Volume
from . import dicom
from .archives import unpacked
from .limits import ImageLimits
from .native_logs import route_itk_messages
from .sanity import check_geometry, finite_image
from .single_pass import checked_volume_file

logger = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
MIN_SIZE = 10


def file_stem(path: Path) -> str:
    """Name without the medical-image suffix ('knee.nii.gz' -> 'knee')."""
    name = Path(path).name
    for suffix in (*VOLUME_SUFFIXES, ".zip", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "case"
    return name or "case"


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's files in name order."""
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


def load_image(path: str | Path, *, limits: ImageLimits | None = None) -> Volume:
    """Read a knee MRI from a file, a DICOM folder or a zip. Raises InvalidInputError with the reason."""
    path = Path(path)
    limits = limits or ImageLimits.from_env()
    kind = image_kind(path)
    if kind == "folder":
        volume = dicom.read_single_series(path, name=path.name, limits=limits)
    elif kind == "zip":
        volume = _load_zip(path, limits)
    elif kind == "volume":
        volume = read_volume_file(path, limits)
    else:
        volume = _load_single_dicom(path, limits)
    check_3d(volume, path.name)
    check_geometry(volume, path.name)
    return with_file_facts(finite_image(volume, path.name), path)


def with_file_facts(volume: Volume, path: Path) -> Volume:
    """The volume with its input's name, size and sha256 in ``meta`` (recorded in results and provenance); a
    sha256 computed while the file was read is kept."""
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    known = volume.meta.get("sha256") if volume.meta.get("file_name") == path.name else None
    return volume.with_meta(file_name=path.name, file_size_bytes=int(size), sha256=known or sha256_of(path))


def read_volume_file(path: Path, limits: ImageLimits | None = None) -> Volume:
    """A NIfTI/NRRD/MetaImage file through SimpleITK, its header checked and its data decompressed once
    (``single_pass``); 3-D, one component."""
    import SimpleITK as sitk

    route_itk_messages()
    with checked_volume_file(path, limits or ImageLimits.from_env()) as checked:
        try:
            image = sitk.ReadImage(str(checked.readable))
        except RuntimeError as exc:
            logger.info("SimpleITK could not read %s: %s", path.name, exc)
            raise InvalidInputError(
                f"{path.name}: not a readable {format_name(path)} file (the reader rejected its contents). "
                "Is it complete?"
            ) from exc
    volume = _single_volume(image, path)
    return volume.with_meta(file_name=path.name, sha256=checked.sha256) if checked.sha256 else volume


def _single_volume(image, path: Path) -> Volume:
    """A 3-D, one-component Volume of an ITK image, or the reason it is not one."""
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
    return Volume.from_sitk(image, source_format=format_name(path))


def format_name(path: Path) -> str:
    lower = path.name.lower()
    if lower.endswith((".nii", ".nii.gz")):
        return "NIfTI"
    if lower.endswith((".nrrd", ".nhdr")):
        return "NRRD"
    if lower.endswith((".mha", ".mhd")):
        return "MetaImage"
    return "DICOM"


def check_3d(volume: Volume, name: str) -> None:
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


def _load_single_dicom(path: Path, limits: ImageLimits) -> Volume:
    import pydicom

    from .multiframe import read_multiframe

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:
        raise InvalidInputError(f"{path.name}: not a readable DICOM file ({exc}).") from exc
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames < 2:
        raise InvalidInputError(
            f"{path.name} is a single 2-D DICOM slice. Upload the whole series as one zip (or a multi-frame DICOM)."
        )
    return read_multiframe(path, name=path.name, limits=limits)


def _load_zip(path: Path, limits: ImageLimits) -> Volume:
    name = path.name
    with unpacked(path, max_bytes=limits.max_unpacked_bytes) as workdir:
        files = [p for p in workdir.rglob("*") if p.is_file() and not p.name.startswith("._")]
        volumes = sorted(p for p in files if p.name.lower().endswith(VOLUME_SUFFIXES))
        if any(dicom.is_dicom_file(p) for p in files):
            volume = dicom.read_single_series(workdir, name=name, limits=limits)
        elif len(volumes) == 1:
            volume = read_volume_file(volumes[0], limits)
        elif len(volumes) > 1:
            listed = ", ".join(p.name for p in volumes[:10])
            raise InvalidInputError(f"{name} holds {len(volumes)} images ({listed}); upload one image per job.")
        else:
            raise InvalidInputError(
                f"{name}: no DICOM series or NIfTI/NRRD/MHA image found inside. Zip the folder of one DICOM series."
            )
        return volume.with_meta(archive=name)


def write_volume(volume: Volume, path: str | Path, *, compress: bool = True) -> Path:
    """Write with SimpleITK (format from the suffix). Geometry is written in double precision for NRRD."""
    import SimpleITK as sitk

    route_itk_messages()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume.to_sitk(), str(path), compress)
    return path
