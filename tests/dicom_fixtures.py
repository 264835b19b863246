"""Write Volumes as DICOM series (one file per slice) with pydicom, for I/O tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from pipeline.volume import Volume


def write_series(
    volume: Volume,
    folder: Path,
    *,
    description: str = "SAG 3D DESS",
    series_number: int = 3,
    extension: str = ".dcm",
    echo_number: int | None = None,
    series_uid: str | None = None,
    echo_time_ms: float = 5.0,
    prefix: str = "IM",
) -> list[Path]:
    """One 16-bit MR slice per k index, with the volume's geometry; returns the file paths."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = "1.2.826.0.1.3680043.8.498.1"
    frame_uid = generate_uid()
    row_dir, col_dir = volume.direction[:, 0], volume.direction[:, 1]
    data = np.clip(volume.array, 0, 65535).astype(np.uint16)
    paths = []
    for k in range(data.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"{prefix}{k:04d}_{echo_number or 0}{extension}"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "MR"
        ds.PatientID = "ANON"
        ds.SeriesDescription = description
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.Manufacturer = "GE MEDICAL SYSTEMS"
        ds.RepetitionTime = 18.0
        ds.EchoTime = echo_time_ms
        ds.FlipAngle = 20.0
        if echo_number is not None:
            ds.EchoNumbers = echo_number
        position = volume.index_to_physical(np.array([[0.0, 0.0, k]]))[0]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [f"{volume.spacing[1]:.6f}", f"{volume.spacing[0]:.6f}"]  # row spacing, column spacing
        ds.SliceThickness = f"{volume.spacing[2]:.6f}"
        ds.Rows, ds.Columns = data.shape[1], data.shape[2]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = data[k].tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced_multiframe(volume: Volume, path: Path) -> Path:
    """One Enhanced MR file holding every slice as a frame, geometry in the functional groups."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import EnhancedMRImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = EnhancedMRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.Modality, ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "MR", "SAG 3D multiframe", 7, 1
    data = np.clip(volume.array, 0, 65535).astype(np.uint16)
    ds.NumberOfFrames = data.shape[0]
    ds.Rows, ds.Columns = data.shape[1], data.shape[2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [f"{volume.spacing[1]:.6f}", f"{volume.spacing[0]:.6f}"]
    measures.SliceThickness = f"{volume.spacing[2]:.6f}"
    measures.SpacingBetweenSlices = f"{volume.spacing[2]:.6f}"
    orientation = Dataset()
    orientation.ImageOrientationPatient = [f"{v:.6f}" for v in (*volume.direction[:, 0], *volume.direction[:, 1])]
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for k in range(data.shape[0]):
        frame, position = Dataset(), Dataset()
        position.ImagePositionPatient = [f"{v:.6f}" for v in volume.index_to_physical(np.array([[0.0, 0.0, k]]))[0]]
        frame.PlanePositionSequence = Sequence([position])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = data.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
