"""Write images as classic single-frame MR DICOM series (one file per slice and echo), with pydicom.

For synthetic examples (``python -m pipeline synth --qdess``) and tests: realistic geometry headers, GE-style echo
interleaving and, optionally, GE's private qDESS spoiler tags. No patient data: PatientName/ID are "ANONYMOUS"
unless a caller sets them (tests do, to check that reports never show them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..volume import Volume

GE_MANUFACTURER = "GE MEDICAL SYSTEMS"


def decimal_string(value: float) -> str:
    """A DICOM decimal string (at most 16 characters)."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def write_mr_series(
    folder: Path,
    geometry: Volume,
    echoes: Sequence[np.ndarray],
    echo_times_ms: Sequence[float],
    *,
    tr_ms: float,
    flip_deg: float,
    description: str,
    spoiler_tags: tuple | None = None,
    scanning_sequence: str | None = "GR",
    sequence_variant: str = "SS",
    echo_shift_mm: dict[int, tuple[float, float, float] | None] | None = None,
    echo_tags: bool = True,
    private_creator: str = "GEMS_ACQU_01",
    patient: dict[str, str] | None = None,
    series_number: int = 5,
    file_names: str = "by_echo",
    slice_thickness_mm: float | None = None,
    acquisition_type: str = "3D",
) -> Path:
    """Write echoes (arrays (nk, nj, ni) on ``geometry``'s grid) as one single-frame MR file per slice and echo.

    Args:
        folder: created if needed; files are named IM_E<echo>_<slice>.dcm, or with ``file_names="interleaved"``
            IM<instance>.dcm in acquisition order (slice by slice, every echo of a slice in turn), as GE exports
            MESE series, so sorting by name mixes the echoes.
        geometry: the grid (spacing, origin, direction) the echo arrays lie on; slices along its k axis.
        echoes: one array per echo, rounded and clipped to uint16.
        echo_times_ms: EchoTime per echo.
        spoiler_tags: GE (0019,10B6) GL area and (0019,10B7) TG values (DS strings, or bytes written as UN).
        scanning_sequence: None leaves ScanningSequence out (as some anonymisers do).
        echo_shift_mm: per echo number, a shift of its slice positions (LPS mm): a broken export.
        echo_tags: False drops EchoNumbers and gives every echo the first EchoTime (echoes not separable).
        patient: PatientName/PatientID/... to write (default anonymous).
        slice_thickness_mm: SliceThickness when it differs from the slice spacing (a 2-D series with a slice gap).
        acquisition_type: MRAcquisitionType, "3D" (qDESS) or "2D" (multi-slice spin echo).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    direction, spacing = geometry.direction, geometry.spacing
    nk = geometry.array.shape[0]
    orientation = [decimal_string(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
    identity = {"PatientName": "ANONYMOUS", "PatientID": "ANONYMOUS", **(patient or {})}
    for e, (signal, te) in enumerate(zip(echoes, echo_times_ms, strict=True), start=1):
        pixels = np.clip(np.rint(signal), 0, 65535).astype(np.uint16)
        shift = np.asarray((echo_shift_mm or {}).get(e) or (0.0, 0.0, 0.0))
        for k in range(nk):
            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
            ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
            for keyword, value in identity.items():
                setattr(ds, keyword, value)
            ds.Modality = "MR"
            ds.Manufacturer = GE_MANUFACTURER
            ds.SeriesDescription = description
            ds.SeriesNumber = series_number
            ds.InstanceNumber = k * len(echoes) + e  # GE interleaves the echoes slice by slice
            if scanning_sequence is not None:
                ds.ScanningSequence = scanning_sequence
            ds.SequenceVariant = sequence_variant
            ds.MRAcquisitionType = acquisition_type
            ds.RepetitionTime = decimal_string(tr_ms)
            ds.EchoTime = decimal_string(te if echo_tags else echo_times_ms[0])
            if echo_tags:
                ds.EchoNumbers = e
            ds.FlipAngle = decimal_string(flip_deg)
            position = np.asarray(geometry.origin) + k * spacing[2] * direction[:, 2] + shift
            ds.ImagePositionPatient = [decimal_string(v) for v in position]
            ds.ImageOrientationPatient = orientation
            ds.PixelSpacing = [decimal_string(spacing[1]), decimal_string(spacing[0])]  # row (j), column (i)
            ds.SliceThickness = decimal_string(slice_thickness_mm or spacing[2])
            ds.SpacingBetweenSlices = decimal_string(spacing[2])
            ds.Rows, ds.Columns = pixels.shape[1], pixels.shape[2]
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            if spoiler_tags is not None:
                block = ds.private_block(0x0019, private_creator, create=True)
                for offset, value in zip((0xB6, 0xB7), spoiler_tags, strict=True):
                    block.add_new(offset, "UN" if isinstance(value, bytes) else "DS", value)
            ds.PixelData = np.ascontiguousarray(pixels[k]).tobytes()
            name = f"IM{ds.InstanceNumber:05d}.dcm" if file_names == "interleaved" else f"IM_E{e}_{k + 1:04d}.dcm"
            ds.save_as(folder / name, enforce_file_format=True)
    return folder
