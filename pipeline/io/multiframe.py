"""Enhanced (multi-frame) DICOM: one file holding a whole 3-D volume."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInputError
from ..volume import Volume
from .limits import ImageLimits


def read_multiframe(path: Path, *, name: str, limits: ImageLimits | None = None) -> Volume:
    """Read a multi-frame DICOM file (its frames are the slices), after checking its declared size."""
    import pydicom
    import SimpleITK as sitk

    from .headers import check_pixel_data_complete

    try:
        header = pydicom.dcmread(path, defer_size=1024)
    except Exception as exc:
        raise InvalidInputError(f"{name}: not a readable DICOM file ({exc}).") from exc
    frames = int(getattr(header, "NumberOfFrames", 1) or 1)
    size = (int(getattr(header, "Columns", 0) or 0), int(getattr(header, "Rows", 0) or 0), frames)
    (limits or ImageLimits.from_env()).check(size, name)
    check_pixel_data_complete(path, header, name)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InvalidInputError(f"{name}: the multi-frame DICOM could not be decoded; export it again.") from exc
    if image.GetDimension() != 3 or min(image.GetSize()) < 2:
        raise InvalidInputError(f"{name}: the multi-frame DICOM is not a 3-D volume (size {image.GetSize()}).")
    return Volume.from_sitk(image, source_format="dicom-multiframe")
