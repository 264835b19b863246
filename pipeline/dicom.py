"""DICOM discovery: find the series in a folder, refuse to guess between several, read one into a Volume.

Files are recognised by content (the DICM preamble), not by extension, so extensionless exports work.
Several echoes of one series (qDESS writes two) are split by EchoNumbers/EchoTime and returned separately.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InvalidInputError, MultipleSeriesError
from .volume import Volume

logger = logging.getLogger(__name__)

MIN_SLICES = 10


@dataclass
class SeriesInfo:
    """One DICOM series found on disk."""

    uid: str
    description: str
    number: str
    modality: str
    files: list[Path] = field(default_factory=list)
    n_frames: int = 0

    def summary(self) -> dict:
        return {
            "series_instance_uid": self.uid,
            "description": self.description or "(no description)",
            "series_number": self.number,
            "modality": self.modality,
            "n_files": len(self.files),
            "n_images": self.n_frames,
        }


def is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def find_series(folder: Path) -> list[SeriesInfo]:
    """All image series under ``folder`` (recursive), grouped by SeriesInstanceUID."""
    import pydicom

    series: dict[str, SeriesInfo] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if not is_dicom_file(path):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # a damaged file is skipped, and said so
            logger.warning("skipping unreadable DICOM file %s: %s", path.name, exc)
            continue
        if "PixelData" not in ds and not hasattr(ds, "Rows"):
            continue  # reports, presentation states, DICOMDIR
        uid = str(getattr(ds, "SeriesInstanceUID", "unknown"))
        info = series.setdefault(
            uid,
            SeriesInfo(
                uid=uid,
                description=str(getattr(ds, "SeriesDescription", "")),
                number=str(getattr(ds, "SeriesNumber", "")),
                modality=str(getattr(ds, "Modality", "")),
            ),
        )
        info.files.append(path)
        info.n_frames += int(getattr(ds, "NumberOfFrames", 1) or 1)
    return list(series.values())


def describe_series(series: list[SeriesInfo]) -> str:
    lines = [
        f"  - series {s.number or '?'} '{s.description or '(no description)'}': {s.n_frames} images" for s in series
    ]
    return "\n".join(lines)


def read_single_series(folder: Path, *, name: str) -> Volume:
    """Read the one series under ``folder``; several series or too few slices are errors, not guesses."""
    series = find_series(folder)
    if not series:
        raise InvalidInputError(
            f"No DICOM images found in {name}. Upload a zip of one DICOM series, or a NIfTI/NRRD/MHA file."
        )
    if len(series) > 1:
        raise MultipleSeriesError(
            f"{name} holds {len(series)} DICOM series; KneeScope will not guess which one to analyse.\n"
            f"{describe_series(series)}\nExport or zip just the series you want (e.g. the sagittal DESS/qDESS) and "
            "upload that.",
            [s.summary() for s in series],
        )
    return read_series(series[0], name=name)


def _echo_key(ds) -> tuple:
    echo_number = getattr(ds, "EchoNumbers", None)
    echo_time = getattr(ds, "EchoTime", None)
    return (
        int(echo_number) if echo_number not in (None, "") else 0,
        float(echo_time) if echo_time not in (None, "") else 0.0,
    )


def read_series(info: SeriesInfo, *, name: str) -> Volume:
    """Read one series. A multi-echo series comes back as the root-sum-of-squares of its echoes."""
    if len(info.files) == 1 and info.n_frames > 1:
        return _read_multiframe(info.files[0], name=name)
    volumes, meta = read_echoes(info, name=name)
    if len(volumes) == 1:
        return Volume(volumes[0].array, volumes[0].spacing, volumes[0].origin, volumes[0].direction, meta=meta)
    return _combine_echoes(volumes, meta, name=name)


def read_echoes(info: SeriesInfo, *, name: str) -> tuple[list[Volume], dict]:
    """Each echo of a single-frame series as its own Volume (ordered by echo), plus the series description."""
    import pydicom
    import SimpleITK as sitk

    if info.n_frames < MIN_SLICES:
        raise InvalidInputError(
            f"{name}: the DICOM series '{info.description}' has only {info.n_frames} image(s); a 3-D knee MRI "
            f"needs at least {MIN_SLICES} slices. Upload the whole series (all its files, e.g. as one zip)."
        )
    headers = {p: pydicom.dcmread(p, stop_before_pixels=True) for p in info.files}
    echoes: dict[tuple, list[Path]] = defaultdict(list)
    for path, ds in headers.items():
        echoes[_echo_key(ds)].append(path)
    volumes = []
    for key in sorted(echoes):
        files = _sort_by_position(echoes[key], headers)
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames([str(p) for p in files])
        try:
            image = reader.Execute()
        except RuntimeError as exc:
            raise InvalidInputError(f"{name}: could not read the DICOM series '{info.description}': {exc}") from exc
        volumes.append(Volume.from_sitk(image))
    first = headers[info.files[0]]
    meta = {
        "source_format": "dicom",
        "series": info.summary(),
        "dicom": {
            "manufacturer": str(getattr(first, "Manufacturer", "")),
            "repetition_time_ms": _float_or_none(getattr(first, "RepetitionTime", None)),
            "flip_angle_deg": _float_or_none(getattr(first, "FlipAngle", None)),
            "echo_times_ms": [k[1] for k in sorted(echoes)],
        },
    }
    return volumes, meta


def _combine_echoes(volumes: list[Volume], meta: dict, *, name: str) -> Volume:
    reference = volumes[0]
    for i, other in enumerate(volumes[1:], start=2):
        problems = reference.same_grid(other)
        if problems:
            raise InvalidInputError(f"{name}: echo {i} does not share echo 1's geometry ({'; '.join(problems)}).")
    stack = np.stack([v.array.astype(np.float32) for v in volumes])
    rss = np.sqrt(np.sum(stack**2, axis=0))
    meta = {**meta, "n_echoes": len(volumes), "combined": "root-sum-of-squares of echoes"}
    return Volume(rss, reference.spacing, reference.origin, reference.direction, meta=meta)


def _sort_by_position(files: list[Path], headers: dict) -> list[Path]:
    """Order slices along the slice normal (InstanceNumber when positions are missing)."""
    ds0 = headers[files[0]]
    orientation = getattr(ds0, "ImageOrientationPatient", None)
    if orientation is None or any(getattr(headers[p], "ImagePositionPatient", None) is None for p in files):
        return sorted(files, key=lambda p: int(getattr(headers[p], "InstanceNumber", 0) or 0))
    row, col = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row, col)
    positions = {p: float(np.dot(normal, np.array(headers[p].ImagePositionPatient, float))) for p in files}
    ordered = sorted(files, key=positions.get)
    distinct = {round(positions[p], 3) for p in files}
    if len(distinct) != len(files):
        raise InvalidInputError(
            f"The DICOM series has {len(files)} images but only {len(distinct)} distinct slice positions; "
            "it may mix several acquisitions. Upload one series with one image per slice."
        )
    return ordered


def _read_multiframe(path: Path, *, name: str) -> Volume:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InvalidInputError(f"{name}: could not read the multi-frame DICOM: {exc}") from exc
    if image.GetDimension() != 3 or min(image.GetSize()) < 2:
        raise InvalidInputError(f"{name}: the multi-frame DICOM is not a 3-D volume (size {image.GetSize()}).")
    return Volume.from_sitk(image, source_format="dicom-multiframe")


def _float_or_none(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
