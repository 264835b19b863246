"""DICOM series: find the series in a folder, refuse to guess between several, read one into a Volume.

Files are recognised by content (the DICM preamble), not by extension, so extensionless exports work. Every
header is read once (pixel data deferred, not loaded), and kept: the returned Volume's ``source`` is a
:class:`DicomSource` with the headers per echo and each echo's image, which T2 mapping and DICOM-SEG use without
touching the files again. Several echoes of one series (qDESS writes two, MESE eight) are split by
EchoNumbers/EchoTime; the Volume itself is echo 1, or the root-sum-of-squares of the echoes.

Before any pixel is decoded, the series' voxel count is checked against the limits and every file's pixel data
against its declared length, so a truncated slice is named instead of surfacing as an ITK error.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, MultipleSeriesError
from ..volume import Volume
from .headers import PIXEL_DATA, check_pixel_data_complete
from .limits import ImageLimits

logger = logging.getLogger(__name__)

MIN_SLICES = 10
DEFER_BYTES = 1024  # values larger than this (pixel data) are not loaded while reading headers


@dataclass
class SeriesInfo:
    """One DICOM series found on disk, with the header of each of its files (pixel data not loaded)."""

    uid: str
    description: str
    number: str
    modality: str
    files: list[Path] = field(default_factory=list)
    headers: dict[Path, Any] = field(default_factory=dict)
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


@dataclass(frozen=True)
class EchoImage:
    """One echo of a series: its image and its headers in slice order (pydicom Datasets, no pixel data)."""

    number: int
    echo_time_ms: float | None
    volume: Volume
    headers: tuple[Any, ...]


@dataclass(frozen=True)
class DicomSource:
    """The DICOM acquisition behind a loaded image: series summary, echoes with their headers, file names.

    Attributes:
        series: summary of the series (UID, description, number, modality, counts).
        echoes: every echo, ordered by (EchoNumbers, EchoTime); one entry for a single-echo series.
        name: what the user gave (folder or zip name), for messages.
    """

    series: dict
    echoes: tuple[EchoImage, ...]
    name: str

    @property
    def first_header(self) -> Any:
        return self.echoes[0].headers[0]

    @property
    def headers(self) -> list[Any]:
        return [h for echo in self.echoes for h in echo.headers]

    def value(self, keyword: str) -> Any:
        """A header value of the first file (None when absent)."""
        return getattr(self.first_header, keyword, None)

    def acquisition(self) -> dict:
        """Scanner-independent description for results and provenance (no patient data)."""
        first = self.first_header
        return {
            "manufacturer": str(getattr(first, "Manufacturer", "")),
            "scanning_sequence": header_text(first, "ScanningSequence"),
            "repetition_time_ms": _float_or_none(getattr(first, "RepetitionTime", None)),
            "flip_angle_deg": _float_or_none(getattr(first, "FlipAngle", None)),
            "echo_times_ms": [e.echo_time_ms for e in self.echoes],
        }


def is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def find_series(folder: Path, *, name: str | None = None) -> list[SeriesInfo]:
    """All image series under ``folder`` (recursive), grouped by SeriesInstanceUID.

    Raises:
        InvalidInputError: a file with the DICOM preamble whose header cannot be read (named): skipping it would
            leave a gap in its series.
    """
    import pydicom

    series: dict[str, SeriesInfo] = {}
    damaged = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if not is_dicom_file(path):
            continue
        try:
            ds = pydicom.dcmread(path, defer_size=DEFER_BYTES)
        except Exception as exc:  # pydicom raises many kinds for a damaged header
            logger.info("unreadable DICOM file %s: %s", path.name, exc)
            damaged.append(path.name)
            continue
        if PIXEL_DATA not in ds and not hasattr(ds, "Rows"):
            if not _names_its_object(ds):  # pydicom read garbage leniently: a damaged header
                damaged.append(path.name)
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
        info.headers[path] = ds
        info.n_frames += int(getattr(ds, "NumberOfFrames", 1) or 1)
    if damaged:
        listed = ", ".join(damaged[:5]) + (f" and {len(damaged) - 5} more" if len(damaged) > 5 else "")
        raise InvalidInputError(
            f"{name or folder.name}: {len(damaged)} DICOM file(s) are damaged and cannot be read ({listed}); a series "
            "with a missing slice would be analysed wrongly. Copy or export the series again."
        )
    return list(series.values())


def _names_its_object(ds: Any) -> bool:
    """Every DICOM object states its kind (SOP class), in its data set or its file meta; a damaged header,
    which pydicom reads leniently into a few stray elements, does not."""
    meta = getattr(ds, "file_meta", None)
    return bool(getattr(ds, "SOPClassUID", None) or getattr(meta, "MediaStorageSOPClassUID", None))


def describe_series(series: list[SeriesInfo]) -> str:
    lines = [
        f"  - series {s.number or '?'} '{s.description or '(no description)'}': {s.n_frames} images" for s in series
    ]
    return "\n".join(lines)


def single_series(folder: Path, *, name: str) -> SeriesInfo:
    """The one series under ``folder``; none or several are errors (listing them), never a guess."""
    series = find_series(folder, name=name)
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
    return series[0]


def read_single_series(folder: Path, *, name: str, limits: ImageLimits | None = None) -> Volume:
    """Read the one series under ``folder``; several series or too few slices are errors, not guesses."""
    return read_series(single_series(folder, name=name), name=name, limits=limits)


def echo_key(ds: Any) -> tuple[int, float]:
    """(EchoNumbers, EchoTime) of a header, 0 where absent: how echoes are grouped and ordered."""
    echo_number = getattr(ds, "EchoNumbers", None)
    echo_time = getattr(ds, "EchoTime", None)
    return (
        int(echo_number) if echo_number not in (None, "") else 0,
        float(echo_time) if echo_time not in (None, "") else 0.0,
    )


def read_series(info: SeriesInfo, *, name: str, limits: ImageLimits | None = None) -> Volume:
    """Read one series into a Volume whose ``source`` is its :class:`DicomSource`.

    A multi-echo series comes back as the root-sum-of-squares of its echoes (every echo on echo 1's grid).
    """
    from .multiframe import read_multiframe

    check_series_limits(info, name, limits or ImageLimits.from_env())
    if len(info.files) == 1 and info.n_frames > 1:
        return read_multiframe(info.files[0], name=name, limits=limits)
    if info.n_frames < MIN_SLICES:
        raise InvalidInputError(
            f"{name}: the DICOM series '{info.description}' has only {info.n_frames} image(s); a 3-D knee MRI "
            f"needs at least {MIN_SLICES} slices. Upload the whole series (all its files, e.g. as one zip)."
        )
    for path in info.files:
        check_pixel_data_complete(path, info.headers[path], name)
    groups: dict[tuple[int, float], list[Path]] = defaultdict(list)
    for path, ds in info.headers.items():
        groups[echo_key(ds)].append(path)
    echoes = []
    for key in sorted(groups):
        files = _sort_by_position(groups[key], info.headers)
        volume = _read_files(files, info, name)
        number, te = key
        echoes.append(EchoImage(number, te or None, volume, tuple(info.headers[p] for p in files)))
    source = DicomSource(info.summary(), tuple(echoes), name)
    meta = {"source_format": "dicom", "series": info.summary(), "dicom": source.acquisition()}
    if len(echoes) == 1:
        first = echoes[0].volume
        return Volume(first.array, first.spacing, first.origin, first.direction, meta=meta, source=source)
    return _combine_echoes(source, meta, name=name)


def check_series_limits(info: SeriesInfo, name: str, limits: ImageLimits) -> None:
    """Refuse a series whose headers declare more voxels (or a larger case) than the limits, before any pixel is
    decoded."""
    first = next(iter(info.headers.values()))
    rows, columns = int(getattr(first, "Rows", 0) or 0), int(getattr(first, "Columns", 0) or 0)
    limits.check((columns, rows, info.n_frames), name, header_spacing(first))


def header_spacing(ds: Any) -> tuple[float, float, float] | None:
    """(column, row, slice) spacing in mm from a slice's header (PixelSpacing, SpacingBetweenSlices or
    SliceThickness), None when it does not say. The cost estimate needs no more precision than this."""
    try:
        row_mm, column_mm = (float(v) for v in ds.PixelSpacing)
        step = getattr(ds, "SpacingBetweenSlices", None) or getattr(ds, "SliceThickness", None)
        spacing = (column_mm, row_mm, abs(float(step))) if step not in (None, "") else None
    except (AttributeError, TypeError, ValueError):
        return None
    # the series' real geometry comes from the slice positions (checked once read): an odd tag is no reason to refuse
    return spacing if spacing is not None and all(v > 0 for v in spacing) else None


def _read_files(files: list[Path], info: SeriesInfo, name: str) -> Volume:
    import SimpleITK as sitk

    from .native_logs import route_itk_messages

    route_itk_messages()  # e.g. "Non uniform sampling or missing slices detected" for a series with slice gaps
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in files])
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        logger.info("ITK could not read %s: %s", name, exc)
        raise InvalidInputError(
            f"{name}: the DICOM series '{info.description}' could not be decoded (its pixel data is damaged or uses "
            "a compression this reader does not support). Export it again uncompressed."
        ) from exc
    return Volume.from_sitk(image)


def root_sum_of_squares(echoes: list[np.ndarray]) -> np.ndarray:
    """sqrt(sum of squares) of same-shaped echo arrays, float32 (how qDESS and multi-echo images are combined)."""
    total = np.zeros(echoes[0].shape, dtype=np.float32)
    for echo in echoes:
        total += np.square(echo, dtype=np.float32)
    return np.sqrt(total, out=total)


def _combine_echoes(source: DicomSource, meta: dict, *, name: str) -> Volume:
    reference = source.echoes[0].volume
    for i, echo in enumerate(source.echoes[1:], start=2):
        problems = reference.same_grid(echo.volume)
        if problems:
            raise InvalidInputError(f"{name}: echo {i} does not share echo 1's geometry ({'; '.join(problems)}).")
    total = root_sum_of_squares([echo.volume.array for echo in source.echoes])
    meta = {**meta, "n_echoes": len(source.echoes), "combined": "root-sum-of-squares of echoes"}
    return Volume(total, reference.spacing, reference.origin, reference.direction, meta=meta, source=source)


def _sort_by_position(files: list[Path], headers: dict) -> list[Path]:
    """Order slices along the slice normal (InstanceNumber when positions are missing)."""
    ds0 = headers[files[0]]
    orientation = getattr(ds0, "ImageOrientationPatient", None)
    if orientation is None or any(getattr(headers[p], "ImagePositionPatient", None) is None for p in files):
        return sorted(files, key=lambda p: int(getattr(headers[p], "InstanceNumber", 0) or 0))
    row, col = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row, col)
    positions = {p: float(np.dot(normal, np.array(headers[p].ImagePositionPatient, float))) for p in files}
    ordered = sorted(files, key=lambda p: positions[p])
    distinct = {round(positions[p], 3) for p in files}
    if len(files) == 2 * len(distinct) and all(echo_key(headers[p]) == echo_key(ds0) for p in files):
        raise InvalidInputError(
            "The DICOM series has two images per slice position but no EchoNumbers or EchoTime that tell the echoes "
            "apart, so the echoes cannot be separated. Export the series with its echo tags."
        )
    if len(distinct) != len(files):
        raise InvalidInputError(
            f"The DICOM series has {len(files)} images but only {len(distinct)} distinct slice positions; "
            "it may mix several acquisitions, or echoes without EchoNumbers/EchoTime to tell them apart. "
            "Upload one series with one image per slice (and echo)."
        )
    _check_no_gap(ordered, [positions[p] for p in ordered])
    return ordered


def _check_no_gap(ordered: list[Path], positions: list[float]) -> None:
    """Refuse a series with a missing slice (a step between neighbours well above the usual one): ITK would
    stack the slices as if evenly spaced, and every distance across the gap would be wrong."""
    steps = np.diff(positions)
    if len(steps) < 3:
        return
    typical = float(np.median(steps))
    widest = int(np.argmax(steps))
    if typical > 0 and steps[widest] > 1.5 * typical:
        raise InvalidInputError(
            f"The DICOM series has a gap: slices {ordered[widest].name} and {ordered[widest + 1].name} are "
            f"{steps[widest]:.2f} mm apart where the others are {typical:.2f} mm; a slice is missing (a damaged or "
            "non-DICOM file in the upload?). Upload the whole series again."
        )


def _float_or_none(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def header_text(ds: Any, keyword: str) -> str:
    """A header value as text; multi-valued elements joined by a backslash, as DICOM stores them."""
    value = getattr(ds, keyword, None)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)
